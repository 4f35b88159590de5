"""Turns an HTTP body into a Mail, or into an error that names the field and the problem."""
import base64
import binascii
import re
import uuid
from datetime import datetime, timedelta, timezone

from ingest.bodies import parse_json
from schemas.events import now_ms
from schemas.model import DEFAULT_TENANT, Attachment, Mail
from schemas.validation import InvalidMail, check_mail, own_mail_id

_SPLIT = re.compile(r"[,;\s]+")
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FIELDS = frozenset({
    "sender", "recipients", "subject", "content", "send_at",
    "html", "cc", "bcc", "reply_to", "headers", "attachments", "tags", "metadata",
})
_ATTACHMENT_FIELDS = ("filename", "content_type", "content")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_SEND_AT_FORMS = "an RFC 3339 timestamp with a timezone or integer milliseconds since the Unix epoch"


def new_id(tenant: str) -> str:
    """A fresh id among the tenant's own (schemas.validation.own_mail_id)."""
    return own_mail_id(tenant, uuid.uuid4().hex)


def _string(data: dict, field: str, default: str | None = None) -> str:
    """A required string, or an optional one when `default` is given."""
    value = data.get(field)
    if value is None:
        if default is None:
            raise InvalidMail(field, "is required")
        return default
    if not isinstance(value, str):
        raise InvalidMail(field, "must be a string")
    return value


def _addresses(data: dict, field: str, required: bool = False) -> tuple[str, ...]:
    """Recipients as one string of comma-separated addresses, or as a JSON list; the same for cc and bcc."""
    value = data.get(field)
    if value is None:
        if required:
            raise InvalidMail(field, "is required")
        return ()
    if isinstance(value, str):
        return tuple(part for part in _SPLIT.split(value) if part)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise InvalidMail(field, "must be a string of addresses or a list of strings")


def _strings(data: dict, field: str) -> tuple[str, ...]:
    value = data.get(field, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidMail(field, "must be a list of strings")
    return tuple(value)


def _string_map(data: dict, field: str) -> dict[str, str]:
    value = data.get(field, {})
    if not isinstance(value, dict):
        raise InvalidMail(field, "must be an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidMail(f"{field}.{key}", "must be a string")
    return value


def _attachments(data: dict) -> tuple[Attachment, ...]:
    """Each attachment's content arrives base64-encoded (standard alphabet, padded) and travels as bytes."""
    value = data.get("attachments", [])
    if not isinstance(value, list):
        raise InvalidMail("attachments", "must be a list of {filename, content_type, content} objects")
    attachments = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidMail(f"attachments[{i}]", "must be an object with filename, content_type and content")
        unknown = set(item) - set(_ATTACHMENT_FIELDS)
        if unknown:
            raise InvalidMail(f"attachments[{i}].{sorted(unknown)[0]}", "is not a known field")
        try:
            filename, content_type, content = (_string(item, name) for name in _ATTACHMENT_FIELDS)
        except InvalidMail as err:
            raise InvalidMail(f"attachments[{i}].{err.field}", err.problem) from err
        try:
            raw = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as err:
            raise InvalidMail(f"attachments[{i}].content", f"is not valid base64 ({err})") from err
        attachments.append(Attachment(filename, content_type, raw))
    return tuple(attachments)


def _send_at(data: dict) -> int:
    """When to send, in ms since the epoch; 0 (at once) when not given. A time without a zone is refused
    rather than guessed, since the gateway's zone says nothing about the client's."""
    if "send_at" not in data:
        return 0
    value = data["send_at"]
    if isinstance(value, str):
        return timestamp_ms("send_at", value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidMail("send_at", f"must be {_SEND_AT_FORMS}")


def timestamp_ms(field: str, value: str) -> int:
    """An RFC 3339 timestamp with a timezone as ms since the epoch; raises InvalidMail naming `field`."""
    try:
        moment = datetime.fromisoformat(value.upper())
    except ValueError as err:
        raise InvalidMail(field, f"{value!r} is not a valid RFC 3339 timestamp ({err})") from err
    if moment.utcoffset() is None:
        raise InvalidMail(field, f"{value!r} has no timezone (add 'Z' or an offset like '+02:00')")
    return (moment - _EPOCH) // _MS


def mail_from_body(body: bytes, mail_id: str, tenant: str = DEFAULT_TENANT) -> Mail:
    """Parse and validate; the mail is the tenant's, stamped as accepted now, over HTTP."""
    return mail_from_fields(parse_json(body), mail_id, tenant)


def mail_from_fields(data: dict, mail_id: str, tenant: str = DEFAULT_TENANT) -> Mail:
    """Validate a parsed JSON object (a request body, or one mail of a batch) as a mail, like mail_from_body."""
    unknown = set(data) - _FIELDS
    if unknown:
        raise InvalidMail(sorted(unknown)[0], "is not a known field")
    mail = Mail(
        id=mail_id,
        sender=_string(data, "sender"),
        recipients=_addresses(data, "recipients", required=True),
        subject=_string(data, "subject"),
        content=_string(data, "content", ""),
        created_at=now_ms(),
        origin="http",
        send_at=_send_at(data),
        html=_string(data, "html", ""),
        cc=_addresses(data, "cc"),
        bcc=_addresses(data, "bcc"),
        reply_to=_string(data, "reply_to", ""),
        headers=_string_map(data, "headers"),
        attachments=_attachments(data),
        tags=_strings(data, "tags"),
        metadata=_string_map(data, "metadata"),
        tenant=tenant,
    )
    return check_mail(mail)
