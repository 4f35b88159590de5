"""Turns an HTTP body into a Mail, or into an error that names the field and the problem."""
import re
import uuid
from datetime import datetime, timedelta, timezone

import orjson

from schemas.events import now_ms
from schemas.model import Mail
from schemas.validation import InvalidMail, check_mail

_SPLIT = re.compile(r"[,;\s]+")
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FIELDS = frozenset({"sender", "recipients", "subject", "content", "send_at"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_SEND_AT_FORMS = "an RFC 3339 timestamp with a timezone or integer milliseconds since the Unix epoch"


def new_id() -> str:
    return uuid.uuid4().hex


def parse_json(body: bytes) -> dict:
    """The body as a JSON object; raises InvalidMail('body', ...) otherwise."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InvalidMail("body", f"not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise InvalidMail("body", "must be a JSON object")
    return data


def _string(data: dict, field: str) -> str:
    value = data.get(field)
    if value is None:
        raise InvalidMail(field, "is required")
    if not isinstance(value, str):
        raise InvalidMail(field, "must be a string")
    return value


def _recipients(data: dict) -> tuple[str, ...]:
    """The seed took recipients as one string of addresses; a JSON list is accepted too."""
    value = data.get("recipients")
    if value is None:
        raise InvalidMail("recipients", "is required")
    if isinstance(value, str):
        return tuple(part for part in _SPLIT.split(value) if part)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise InvalidMail("recipients", "must be a string of addresses or a list of strings")


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


def mail_from_body(body: bytes, mail_id: str) -> Mail:
    """Parse and validate; the mail is stamped as accepted now, over HTTP."""
    data = parse_json(body)
    unknown = set(data) - _FIELDS
    if unknown:
        raise InvalidMail(sorted(unknown)[0], "is not a known field")
    mail = Mail(
        id=mail_id,
        sender=_string(data, "sender"),
        recipients=_recipients(data),
        subject=_string(data, "subject"),
        content=_string(data, "content"),
        created_at=now_ms(),
        origin="http",
        send_at=_send_at(data),
    )
    return check_mail(mail)
