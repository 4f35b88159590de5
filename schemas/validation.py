"""Rules a mail must satisfy before anyone tries to send it, shared by the HTTP gateway and the dispatcher
(which sees records from outside producers that never passed the gateway)."""
import dataclasses
import os
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from schemas.events import now_ms
from schemas.model import Mail

MAX_SUBJECT = int(os.environ.get("MERCURY_MAX_SUBJECT_CHARS", "998"))
MAX_CONTENT = int(os.environ.get("MERCURY_MAX_CONTENT_BYTES", str(512 * 1024)))
MAX_RECIPIENTS = int(os.environ.get("MERCURY_MAX_RECIPIENTS", "50"))
MAX_SCHEDULE_DAYS = int(os.environ.get("MERCURY_MAX_SCHEDULE_DAYS", "30"))
MAX_ID = 128
_DAY_MS = 86_400_000


class InvalidMail(ValueError):
    """The mail can never be sent as it is; the message names the field and the problem."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@lru_cache(maxsize=65536)
def _normalized(address: str) -> tuple[str, str]:
    """(normalized address, "") or ("", why it is invalid); cached because senders and recipients repeat
    and the syntax check is a large share of a request's CPU."""
    try:
        return validate_email(address, check_deliverability=False).normalized, ""
    except EmailNotValidError as err:
        return "", str(err)


def check_address(field: str, address: str) -> str:
    """Return the normalized address or raise InvalidMail; never touches DNS."""
    normalized, problem = _normalized(address)
    if problem:
        raise InvalidMail(field, f"{address!r} is not a valid address ({problem})")
    return normalized


def check_mail(mail: Mail, now: int | None = None) -> Mail:
    """Validate every field; returns the mail with normalized addresses. `now` (ms) is when the mail is
    checked: send_at may lie at most MAX_SCHEDULE_DAYS after it, so a mistyped date cannot hold a mail for good."""
    if not mail.id or len(mail.id) > MAX_ID:
        raise InvalidMail("id", f"must be 1 to {MAX_ID} characters")
    sender = check_address("sender", mail.sender)
    if not mail.recipients:
        raise InvalidMail("recipients", "at least one recipient is required")
    if len(mail.recipients) > MAX_RECIPIENTS:
        raise InvalidMail("recipients", f"{len(mail.recipients)} recipients, at most {MAX_RECIPIENTS} allowed")
    recipients = tuple(check_address("recipients", r) for r in mail.recipients)
    if len(mail.subject) > MAX_SUBJECT:
        raise InvalidMail("subject", f"{len(mail.subject)} characters, at most {MAX_SUBJECT} allowed")
    if "\r" in mail.subject or "\n" in mail.subject:
        raise InvalidMail("subject", "must not contain line breaks")
    if len(mail.content.encode()) > MAX_CONTENT:
        raise InvalidMail("content", f"larger than {MAX_CONTENT} bytes")
    _check_send_at(mail.send_at, now_ms() if now is None else now)
    return dataclasses.replace(mail, sender=sender, recipients=recipients)


def _check_send_at(send_at: int, now: int) -> None:
    """A time in the past (or 0) means at once; only a time too far ahead is refused."""
    if send_at > now + MAX_SCHEDULE_DAYS * _DAY_MS:
        raise InvalidMail("send_at", f"more than {MAX_SCHEDULE_DAYS} days ahead")
