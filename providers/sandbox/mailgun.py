"""Mailgun's messages API: Basic `api:KEY`, form fields, 200 `{"id", "message"}`, errors `{"message"}`."""
import base64
import binascii
import itertools
import secrets
import time
from email.utils import getaddresses
from typing import ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from providers.sandbox.emulator import Emulator, Invalid, Problem
from providers.sandbox.faults import Faults
from providers.sandbox.forms import FormInvalid, Upload, read_form
from providers.sandbox.mailbox import Received, ReceivedFile

# Mailgun's documented per-message limit on o:tag (raised from 3 to 10 in 2025).
MAX_TAGS = 10
MAX_TAG_CHARS = 128


class MailgunEmulator(Emulator):
    name = "mailgun"
    send_path = "/v3/{domain}/messages"
    default_port = 8025
    status_messages: ClassVar[dict[int, str]] = {
        401: "Forbidden",
        402: "Request Failed",
        403: "Domain is not allowed to send: account disabled",
        413: "Request Entity Too Large",
        429: "Too Many Requests",
    }

    def __init__(self, api_key: str, keep: int) -> None:
        super().__init__(api_key, keep)
        self._sequence = itertools.count(1)

    def authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, key = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == "api" and key == self.api_key

    async def parse(self, request: Request, faults: Faults) -> Received:
        # Mailgun takes both multipart/form-data and urlencoded forms; files come only with multipart.
        try:
            pairs = read_form(request.headers.get("content-type", ""), await request.body())
        except FormInvalid as err:
            raise Invalid(Problem(str(err))) from None
        form: dict[str, list[str]] = {}
        files: list[ReceivedFile] = []
        for key, value in pairs:
            if isinstance(value, Upload):
                if key not in ("attachment", "inline"):
                    raise Invalid(Problem(f"'{key}' parameter is not a file parameter"))
                files.append(ReceivedFile.of(value.filename, value.content_type, value.data))
            else:
                form.setdefault(key, []).append(value)
        if form.get("attachment"):
            raise Invalid(Problem("'attachment' parameter must be a file"))
        for required in ("from", "to", "subject"):
            if not any(form.get(required, ())):
                raise Invalid(Problem(f"{required} parameter is missing"))
        text = form.get("text", [""])[0]
        html = form.get("html", [""])[0]
        if not (text or html or form.get("template")):
            raise Invalid(Problem("Need at least one of 'text', 'html' or 'template' parameters specified"))
        to, cc, bcc = (self._addresses(form, name, faults) for name in ("to", "cc", "bcc"))
        if not to:
            raise Invalid(Problem("'to' parameter is not a valid address. please check documentation"))
        tags = tuple(form.get("o:tag", ()))
        if len(tags) > MAX_TAGS or any(len(tag) > MAX_TAG_CHARS or not tag.isascii() for tag in tags):
            raise Invalid(Problem(f"o:tag: at most {MAX_TAGS} ASCII tags of up to {MAX_TAG_CHARS} characters"))
        # `h:X-Name` becomes the header X-Name; Reply-To is one of them, kept apart for the mailbox.
        headers = {key[2:]: values[0] for key, values in form.items() if key.startswith("h:")}
        reply_to = headers.pop("Reply-To", "")
        custom = {key[2:]: values[0] for key, values in form.items() if key.startswith("v:")}
        return Received(form["from"][0], to, form["subject"][0], text, custom, html=html, cc=cc, bcc=bcc,
                        reply_to=reply_to, headers=headers, attachments=tuple(files), tags=tags)

    def _addresses(self, form: dict[str, list[str]], name: str, faults: Faults) -> tuple[str, ...]:
        """A recipient field may repeat, and each value may be a comma-joined list with display names."""
        addresses = tuple(address for _, address in getaddresses(form.get(name, [])))
        if not all(self.deliverable(address, faults) for address in addresses):
            raise Invalid(Problem(f"'{name}' parameter is not a valid address. please check documentation"))
        return addresses

    def new_message_id(self, request: Request) -> str:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        return f"{stamp}.{next(self._sequence)}.{secrets.token_hex(6).upper()}@{request.path_params['domain']}"

    def accepted(self, message_id: str) -> Response:
        # The answer wraps the id in angle brackets: it is the Message-Id header of the stored mail.
        return JSONResponse({"id": f"<{message_id}>", "message": "Queued. Thank you."})

    def error_response(self, status: int, problems: list[Problem]) -> Response:
        message = "; ".join(problem.message for problem in problems)
        if status == 401:
            # A bad or missing key is answered in plain text, not JSON.
            return PlainTextResponse(message, status_code=401)
        return JSONResponse({"message": message}, status_code=status)
