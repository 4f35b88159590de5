"""SendGrid's v3 mail send: Bearer key, JSON body, 202 with an empty body and X-Message-Id."""
import base64
import binascii
import secrets
from typing import Any, ClassVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from providers.sandbox.emulator import Emulator, Invalid, Problem
from providers.sandbox.faults import Faults
from providers.sandbox.mailbox import Received, ReceivedFile

MAX_RECIPIENTS = 1000
MAX_CATEGORIES = 10
MAX_CATEGORY_CHARS = 255
MAX_CUSTOM_ARGS_BYTES = 10_000
# Headers SendGrid writes itself; a request that sets one is refused.
RESERVED_HEADERS = frozenset({
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type", "content-transfer-encoding", "to",
    "from", "subject", "reply-to", "cc", "bcc",
})
DISPOSITIONS = ("attachment", "inline")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _email(value: Any) -> str:
    return _text(value.get("email")) if isinstance(value, dict) else ""


class SendGridEmulator(Emulator):
    name = "sendgrid"
    send_path = "/v3/mail/send"
    default_port = 8026
    status_messages: ClassVar[dict[int, str]] = {
        401: "The provided authorization grant is invalid, expired, or revoked",
        403: "access forbidden",
        413: "The JSON payload you have included in your request is too large.",
        429: "too many requests",
        500: "internal error",
    }

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    async def parse(self, request: Request, faults: Faults) -> Received:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise Invalid(Problem("Bad Request")) from None
        if not isinstance(body, dict):
            raise Invalid(Problem("Bad Request"))
        problems: list[Problem] = []
        to, cc, bcc = self._recipients(body.get("personalizations"), faults, problems)
        sender_address = _email(body.get("from"))
        if not sender_address:
            problems.append(Problem(
                "The from object must be provided for every email send. It is an object that requires an email "
                "address, and may contain a name.",
                "from.email",
            ))
        reply_to = body.get("reply_to")
        if reply_to is not None and not self.deliverable(_email(reply_to), faults):
            problems.append(Problem("The reply_to email does not contain a valid address.", "reply_to.email"))
        subject = _text(body.get("subject"))
        if not subject:
            problems.append(Problem(
                "The subject is required. You can get around this requirement if you use a template with a "
                "subject defined or if every personalization has a subject defined.",
                "subject",
            ))
        text, html = _content(body.get("content"), problems)
        headers = _headers(body.get("headers"), problems)
        tags = _categories(body.get("categories"), problems)
        attachments = _attachments(body.get("attachments"), problems)
        custom = body.get("custom_args")
        custom = {str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {}
        if len(orjson.dumps(custom)) > MAX_CUSTOM_ARGS_BYTES:
            problems.append(Problem(f"The custom_args total size must be less than {MAX_CUSTOM_ARGS_BYTES} bytes.",
                                    "custom_args"))
        if problems:
            raise Invalid(*problems)
        return Received(sender_address, to, subject, text, custom, html=html, cc=cc, bcc=bcc,
                        reply_to=_email(reply_to), headers=headers, attachments=attachments, tags=tags)

    def _recipients(self, personalizations: Any, faults: Faults,
                    problems: list[Problem]) -> tuple[tuple[str, ...], ...]:
        """to, cc and bcc of every personalization; an address may appear once across all three."""
        if not isinstance(personalizations, list) or not personalizations:
            problems.append(Problem(
                "The personalizations field is required and must have at least one personalization.",
                "personalizations",
            ))
            return (), (), ()
        found: dict[str, list[str]] = {"to": [], "cc": [], "bcc": []}
        for p, personalization in enumerate(personalizations):
            if not isinstance(personalization, dict):
                personalization = {}
            to = personalization.get("to")
            if not isinstance(to, list) or not to:
                problems.append(Problem(
                    "The to array is required for all personalization objects, and must have at least one "
                    "email object with a valid email address.",
                    f"personalizations.{p}.to",
                ))
                continue
            seen: set[str] = set()
            for kind in found:
                if kind not in personalization:
                    continue
                entries = personalization[kind]
                if not isinstance(entries, list) or not entries:
                    problems.append(Problem(
                        f"The {kind} array, when used, must at least have an email parameter with a valid email "
                        "address and it may also contain a name parameter.",
                        f"personalizations.{p}.{kind}",
                    ))
                    continue
                for r, entry in enumerate(entries):
                    address = _email(entry)
                    if not self.deliverable(address, faults):
                        problems.append(Problem("Does not contain a valid address.",
                                                f"personalizations.{p}.{kind}.{r}.email"))
                    elif address.lower() in seen:
                        problems.append(Problem(
                            "Each email address in the personalization block should be unique between to, cc, and "
                            f"bcc. We found the first duplicate instance of [{address}] in the "
                            f"personalizations.{p}.{kind} field.",
                            f"personalizations.{p}",
                        ))
                    seen.add(address.lower())
                    found[kind].append(address)
        if sum(len(addresses) for addresses in found.values()) > MAX_RECIPIENTS:
            problems.append(Problem(f"There is a limit of {MAX_RECIPIENTS} total recipients (to + cc + bcc) per "
                                    "request.", "personalizations"))
        return tuple(found["to"]), tuple(found["cc"]), tuple(found["bcc"])

    def new_message_id(self, request: Request) -> str:
        return secrets.token_urlsafe(16)[:22]

    def accepted(self, message_id: str) -> Response:
        return Response(status_code=202, headers={"X-Message-Id": message_id})

    def error_response(self, status: int, problems: list[Problem]) -> Response:
        # Every error, auth and rate limit included, is a JSON list of {message, field, help}.
        errors = [{"message": problem.message, "field": problem.field, "help": None} for problem in problems]
        return Response(orjson.dumps({"errors": errors}), status_code=status, media_type="application/json")


def _content(content: Any, problems: list[Problem]) -> tuple[str, str]:
    """(text, html): text/plain must come first and text/html next, each at most once."""
    if not isinstance(content, list) or not content:
        problems.append(Problem(
            "Unless a valid template_id is provided, the content parameter is required. There must be at "
            "least one defined content block.",
            "content",
        ))
        return "", ""
    bodies: dict[str, str] = {}
    for c, block in enumerate(content):
        kind = _text(block.get("type")) if isinstance(block, dict) else ""
        value = _text(block.get("value")) if isinstance(block, dict) else ""
        if not value:
            problems.append(Problem(
                "The content value must be a string at least one character in length.", f"content.{c}.value"
            ))
        if kind in bodies:
            problems.append(Problem(f"If present, {kind} may only be provided once.", f"content.{c}.type"))
        elif (kind == "text/plain" and c != 0) or (kind == "text/html" and c != int("text/plain" in bodies)):
            problems.append(Problem(
                "If present, text/plain and text/html may only be provided once; text/plain must be first, "
                "followed by text/html, followed by any other content.",
                f"content.{c}.type",
            ))
        bodies.setdefault(kind, value)
    return bodies.get("text/plain", ""), bodies.get("text/html", "")


def _headers(headers: Any, problems: list[Problem]) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        problems.append(Problem("The headers parameter must be a collection of key/value pairs.", "headers"))
        return {}
    reserved = sorted(name for name in headers if name.lower() in RESERVED_HEADERS)
    if reserved:
        problems.append(Problem(f"The headers cannot contain reserved headers: {', '.join(reserved)}.", "headers"))
    return dict(headers)


def _categories(categories: Any, problems: list[Problem]) -> tuple[str, ...]:
    if categories is None:
        return ()
    if not isinstance(categories, list) or not all(isinstance(c, str) and c for c in categories):
        problems.append(Problem("The categories parameter must be an array of non-empty strings.", "categories"))
        return ()
    if len(categories) > MAX_CATEGORIES:
        problems.append(Problem(f"You may not have more than {MAX_CATEGORIES} categories per request.", "categories"))
    if len(set(categories)) != len(categories):
        problems.append(Problem("The categories must be unique.", "categories"))
    for c, category in enumerate(categories):
        if len(category) > MAX_CATEGORY_CHARS:
            problems.append(Problem(f"A category cannot be more than {MAX_CATEGORY_CHARS} characters.",
                                    f"categories.{c}"))
    return tuple(categories)


def _attachments(attachments: Any, problems: list[Problem]) -> tuple[ReceivedFile, ...]:
    if attachments is None:
        return ()
    if not isinstance(attachments, list):
        problems.append(Problem("The attachments parameter must be an array of attachment objects.", "attachments"))
        return ()
    files = []
    for a, attachment in enumerate(attachments):
        attachment = attachment if isinstance(attachment, dict) else {}
        filename, kind = _text(attachment.get("filename")), _text(attachment.get("type"))
        disposition = attachment.get("disposition", "attachment")
        if not filename:
            problems.append(Problem("The attachment filename parameter is required.", f"attachments.{a}.filename"))
        if any(c in kind for c in ";\r\n"):
            problems.append(Problem("The attachment type cannot contain ';', or CRLF characters.",
                                    f"attachments.{a}.type"))
        if disposition not in DISPOSITIONS:
            problems.append(Problem("The disposition of your attachment can be either \"inline\" or "
                                    "\"attachment\".", f"attachments.{a}.disposition"))
        try:
            data = base64.b64decode(_text(attachment.get("content")), validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if not data:
            problems.append(Problem("The attachment content must be base64 encoded.", f"attachments.{a}.content"))
        files.append(ReceivedFile.of(filename, kind, data))
    return tuple(files)
