"""Provider webhook payloads turned into `mercury.ProviderEvent` records in the shared FeedbackEvent vocabulary.

Each provider's spelling is handled in its own function; what leaves here is the same record shape for
both, with the message id normalised as on the `sent` event. Provider events that say nothing final about
a recipient (Mailgun accepted or stored, SendGrid processed or deferred, ...) give no record.
"""
import uuid
from collections.abc import Mapping

from schemas import registry
from schemas.message_ids import normalise_message_id
from schemas.vocabulary import Bounce, FeedbackEvent

SCHEMA = registry.PROVIDER_EVENT
CREATED_BY = "ingest/webhooks"
REASON_CHARS = 500
# A provider's retry of one event gets the same record id.
_RECORD_NAMESPACE = uuid.UUID("0b7e6a52-3f0c-4b8e-9d43-6c1e2f5a9d71")

_MAILGUN_EVENTS = {
    "delivered": FeedbackEvent.DELIVERED,
    "failed": FeedbackEvent.BOUNCED,
    "complained": FeedbackEvent.COMPLAINED,
    "opened": FeedbackEvent.OPENED,
    "clicked": FeedbackEvent.CLICKED,
    "unsubscribed": FeedbackEvent.UNSUBSCRIBED,
}
_MAILGUN_SEVERITY = {"permanent": Bounce.HARD, "temporary": Bounce.SOFT}

_SENDGRID_EVENTS = {
    "delivered": FeedbackEvent.DELIVERED,
    "bounce": FeedbackEvent.BOUNCED,
    "dropped": FeedbackEvent.BOUNCED,
    "spamreport": FeedbackEvent.COMPLAINED,
    "open": FeedbackEvent.OPENED,
    "click": FeedbackEvent.CLICKED,
    "unsubscribe": FeedbackEvent.UNSUBSCRIBED,
    "group_unsubscribe": FeedbackEvent.UNSUBSCRIBED,
}


class PayloadInvalid(ValueError):
    """A webhook body that is not the provider's shape; answered 400 naming `field`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _text(document: Mapping, key: str, where: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PayloadInvalid(f"{where}{key}", "required, a non-empty string")
    return value.strip()


def _optional_text(document: Mapping, *keys: str) -> str:
    """The first non-empty string among `keys`, or ""."""
    for key in keys:
        value = document.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _epoch_ms(document: Mapping, key: str, where: str) -> int:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PayloadInvalid(f"{where}{key}", "required, seconds since the Unix epoch")
    return round(value * 1000)


def _record(
    provider: str, event_id: str, message_id: str, event: FeedbackEvent, recipient: str, occurred_at: int,
    received_at: int, bounce: str = "", reason: str = "", url: str = "",
) -> dict:
    return {
        "id": uuid.uuid5(_RECORD_NAMESPACE, f"{provider}:{event_id}").hex,
        "provider": provider,
        "provider_event_id": event_id,
        "message_id": normalise_message_id(message_id),
        "event": str(event),
        "bounce": bounce,
        "recipient": recipient,
        "reason": reason[:REASON_CHARS],
        "url": url,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "created_by": CREATED_BY,
    }


def mailgun_records(event_data: object, received_at: int) -> list[dict]:
    """The record for one Mailgun `event-data` object; none for events Mercury does not track.

    Raises PayloadInvalid naming the first missing or malformed field."""
    where = "event-data."
    if not isinstance(event_data, dict):
        raise PayloadInvalid("event-data", "required, a JSON object")
    event = _MAILGUN_EVENTS.get(_text(event_data, "event", where))
    if event is None:
        return []
    message = event_data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    if not isinstance(headers, dict):
        raise PayloadInvalid(f"{where}message.headers", "required, a JSON object")
    bounce = reason = url = ""
    if event is FeedbackEvent.BOUNCED:
        severity = event_data.get("severity")
        if severity not in _MAILGUN_SEVERITY:
            raise PayloadInvalid(f"{where}severity", "must be permanent or temporary for a failed event")
        bounce = _MAILGUN_SEVERITY[severity]
        status = event_data.get("delivery-status")
        status = status if isinstance(status, dict) else {}
        reason = _optional_text(status, "message", "description") or _optional_text(event_data, "reason")
    if event is FeedbackEvent.CLICKED:
        url = _text(event_data, "url", where)
    return [_record(
        "mailgun", _text(event_data, "id", where), _text(headers, "message-id", f"{where}message.headers."), event,
        _text(event_data, "recipient", where), _epoch_ms(event_data, "timestamp", where), received_at,
        bounce=bounce, reason=reason, url=url,
    )]


def sendgrid_records(batch: object, received_at: int) -> list[dict]:
    """The records for a SendGrid event batch (a JSON array), in its order; none for events not tracked.

    Raises PayloadInvalid naming the first missing or malformed field (as `[index].field`)."""
    if not isinstance(batch, list):
        raise PayloadInvalid("body", "must be a JSON array of events")
    records = []
    for index, item in enumerate(batch):
        where = f"[{index}]."
        if not isinstance(item, dict):
            raise PayloadInvalid(f"[{index}]", "each event must be a JSON object")
        event = _SENDGRID_EVENTS.get(_text(item, "event", where))
        if event is None:
            continue
        bounce = reason = url = ""
        if event is FeedbackEvent.BOUNCED:
            # A block is the receiving server refusing for now (reputation, rate); a bounce or a drop is final.
            bounce = Bounce.SOFT if item.get("type") == "blocked" else Bounce.HARD
            reason = _optional_text(item, "reason", "response")
        if event is FeedbackEvent.CLICKED:
            url = _text(item, "url", where)
        records.append(_record(
            "sendgrid", _text(item, "sg_event_id", where), _text(item, "sg_message_id", where), event,
            _text(item, "email", where), _epoch_ms(item, "timestamp", where), received_at,
            bounce=bounce, reason=reason, url=url,
        ))
    return records
