"""Postmark's `POST /email`: `X-Postmark-Server-Token`, JSON body, 200 `{"To", "SubmittedAt", "MessageID",
"ErrorCode": 0, "Message": "OK"}`; every refusal is `{"ErrorCode", "Message"}`, 422 for a bad request."""
import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import getaddresses, parseaddr
from typing import Any, ClassVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from providers.sandbox.emulator import Emulator, Invalid, Problem, valid_address
from providers.sandbox.faults import Faults
from providers.sandbox.mailbox import Received, ReceivedFile

MAX_RECIPIENTS = 50
# Postmark refuses executables and scripts as attachments (ErrorCode 411).
FORBIDDEN_EXTENSIONS = frozenset({"exe", "bat", "cmd", "com", "scr", "vbs", "js", "jar", "msi", "ps1"})
INVALID_REQUEST, INACTIVE_RECIPIENT, FORBIDDEN_ATTACHMENT = 300, 406, 411
# The ErrorCode an injected status carries unless the `error_code` fault names one.
STATUS_CODES = {401: 10, 422: INVALID_REQUEST, 429: 429, 503: 100}
CODE_MESSAGES = {
    10: "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. "
        "Please verify that you are using a valid token.",
    100: "Maintenance",
    300: "Invalid email request",
    400: "The 'From' address you supplied is not a Sender Signature on your account.",
    401: "Sender signature not confirmed",
    405: "Not allowed to send: the account has run out of credits.",
    406: "You tried to send to recipient(s) that have been marked as inactive.",
    412: "Account is pending approval.",
    413: "Account may not send.",
    429: "Rate limit exceeded.",
}


@dataclass(frozen=True, slots=True)
class PostmarkProblem(Problem):
    """A refusal with the ErrorCode Postmark answers it with."""

    code: int = INVALID_REQUEST


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class PostmarkEmulator(Emulator):
    name = "postmark"
    send_path = "/email"
    default_port = 8027
    status_messages: ClassVar[dict[int, str]] = {401: CODE_MESSAGES[10], 422: CODE_MESSAGES[300]}

    def __init__(self, api_key: str, keep: int) -> None:
        super().__init__(api_key, keep)
        # The accepted answer repeats the request's To: kept here from new_message_id to accepted.
        self._answer_to: dict[str, str] = {}

    def authorized(self, request: Request) -> bool:
        return request.headers.get("x-postmark-server-token") == self.api_key

    async def parse(self, request: Request, faults: Faults) -> Received:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise Invalid(PostmarkProblem("Received invalid JSON input.", code=402)) from None
        if not isinstance(body, dict):
            raise Invalid(PostmarkProblem("Received invalid JSON input.", code=402))
        sender = _text(body.get("From"))
        if not valid_address(_address(sender)):
            raise Invalid(PostmarkProblem(f"Invalid 'From' address: '{sender}'.", "From"))
        lists = {field: _addresses(body, field) for field in ("To", "Cc", "Bcc")}
        everyone = [address for addresses in lists.values() for address in addresses]
        if not everyone:
            raise Invalid(PostmarkProblem("Zero recipients specified", "To"))
        if len(everyone) > MAX_RECIPIENTS:
            raise Invalid(PostmarkProblem(f"Maximum of {MAX_RECIPIENTS} recipients allowed.", "To"))
        inactive = [address for address in everyone if faults.rejects(address)]
        if inactive:
            raise Invalid(PostmarkProblem(
                f"{CODE_MESSAGES[INACTIVE_RECIPIENT]} Found inactive addresses: {', '.join(inactive)}. Inactive "
                "recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.",
                "To", code=INACTIVE_RECIPIENT,
            ))
        text, html = _text(body.get("TextBody")), _text(body.get("HtmlBody"))
        if not (text or html):
            raise Invalid(PostmarkProblem("Provide either email TextBody or HtmlBody or both.", "TextBody"))
        reply_to = _text(body.get("ReplyTo"))
        if reply_to and not valid_address(_address(reply_to)):
            raise Invalid(PostmarkProblem(f"Invalid 'ReplyTo' address: '{reply_to}'.", "ReplyTo"))
        metadata = body.get("Metadata") or {}
        if not isinstance(metadata, dict):
            raise Invalid(PostmarkProblem("Metadata must be an object of string values.", "Metadata"))
        tag = _text(body.get("Tag"))
        request.state.to = _text(body.get("To"))
        return Received(
            _address(sender),
            tuple(lists["To"]),
            _text(body.get("Subject")),
            text,
            {str(key): str(value) for key, value in metadata.items()},
            html=html,
            cc=tuple(lists["Cc"]),
            bcc=tuple(lists["Bcc"]),
            reply_to=reply_to,
            headers=_headers(body.get("Headers")),
            attachments=_attachments(body.get("Attachments")),
            tags=(tag,) if tag else (),
        )

    def new_message_id(self, request: Request) -> str:
        message_id = str(uuid.uuid4())
        self._answer_to[message_id] = request.state.to
        return message_id

    def accepted(self, message_id: str) -> Response:
        return _json(200, {
            "To": self._answer_to.pop(message_id, ""),
            "SubmittedAt": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        })

    def error_response(self, status: int, problems: list[Problem]) -> Response:
        message = "; ".join(problem.message for problem in problems)
        if problems and isinstance(problems[0], PostmarkProblem):
            return _json(422, {"ErrorCode": problems[0].code, "Message": message})
        code = STATUS_CODES.get(status, 0)
        if status != 401 and self.faults.error_code is not None:
            code = self.faults.error_code
            message = CODE_MESSAGES.get(code, message)
        return _json(status, {"ErrorCode": code, "Message": message})


def _address(value: str) -> str:
    return parseaddr(value)[1]


def _addresses(body: dict[str, Any], field: str) -> list[str]:
    """A comma-separated address list; a malformed address refuses the whole request (ErrorCode 300)."""
    addresses = [address for _, address in getaddresses([_text(body.get(field))]) if address]
    for address in addresses:
        if not valid_address(address):
            raise Invalid(PostmarkProblem(
                f"Error parsing '{field}': Illegal email address '{address}'. It must contain the '@' symbol.", field
            ))
    return addresses


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, list):
        return {}
    return {
        _text(header.get("Name")): _text(header.get("Value"))
        for header in value
        if isinstance(header, dict) and _text(header.get("Name"))
    }


def _attachments(value: Any) -> tuple[ReceivedFile, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Invalid(PostmarkProblem("Attachments must be a list.", "Attachments"))
    files = []
    for attachment in value:
        name = _text(attachment.get("Name")) if isinstance(attachment, dict) else ""
        if not name:
            raise Invalid(PostmarkProblem("Attachment Name is required.", "Attachments"))
        if name.rpartition(".")[2].lower() in FORBIDDEN_EXTENSIONS:
            raise Invalid(PostmarkProblem(f"Forbidden attachment type: '{name}'.", "Attachments",
                                          code=FORBIDDEN_ATTACHMENT))
        try:
            content = base64.b64decode(_text(attachment.get("Content")), validate=True)
        except binascii.Error:
            raise Invalid(PostmarkProblem(f"Attachment '{name}' Content is not base64.", "Attachments")) from None
        files.append(ReceivedFile.of(name, _text(attachment.get("ContentType")) or "application/octet-stream",
                                     content))
    return tuple(files)


def _json(status: int, content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")
