"""Building MailEvent records, the one way every component records a step of a mail's life."""
import time
import uuid
from datetime import UTC, datetime

import orjson

from schemas import codec, registry
from schemas.model import Mail
from schemas.vocabulary import EventType

SCHEMA = registry.MAIL_EVENT
# Acceptance is recorded once per mail whoever records it and however often: its id derives from the mail id.
_ACCEPTED_NAMESPACE = uuid.UUID("6f1c1f0e-5d2a-4c57-9a57-3d1f4f3b2a10")


def now_ms() -> int:
    """Milliseconds since the Unix epoch (UTC): the unit of every timestamp in Mercury's records."""
    return time.time_ns() // 1_000_000


def iso_utc(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC, exact to the millisecond: how the tools print a record's time."""
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(
    mail_id: str,
    event: str,
    created_by: str,
    provider: str | None = None,
    outcome: str | None = None,
    event_id: str | None = None,
    created_at: int | None = None,
    **detail: object,
) -> dict:
    """A MailEvent record; `detail` becomes the JSON blob. Pass `event_id` when a re-run must not add a second event."""
    return {
        "id": event_id or uuid.uuid4().hex,
        "mail": mail_id,
        "event": str(event),
        "created_at": created_at if created_at is not None else now_ms(),
        "created_by": created_by,
        "provider": provider,
        "outcome": None if outcome is None else str(outcome),
        "blob": orjson.dumps(detail, default=str).decode() if detail else "",
    }


def encode_event(event: dict) -> bytes:
    return codec.encode(SCHEMA, event)


def accepted_event(mail: Mail, created_by: str, created_at: int | None = None, **detail: object) -> dict:
    """The `accepted` event of a mail, stamped with the time the mail was accepted."""
    return make_event(
        mail.id, EventType.ACCEPTED, created_by, event_id=uuid.uuid5(_ACCEPTED_NAMESPACE, mail.id).hex,
        created_at=created_at or mail.created_at, origin=mail.origin, **detail,
    )
