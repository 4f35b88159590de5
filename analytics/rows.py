"""Kafka record → ClickHouse row, one function per table; needs neither Kafka nor ClickHouse to test.

A record that cannot become a row raises UnusableRecord with the reason; the sink logs it with its
coordinates and moves on, because one bad record must not stall the stream. Some records are not
history at all (the health topic's read markers and worker heartbeats): they map to no row.
"""
import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from schemas import codec, registry, topics
from schemas.model import DEFAULT_TENANT
from schemas.validation import InvalidMail, check_mail_id
from schemas.vocabulary import EventType, HealthState

log = logging.getLogger("mercury.analytics.rows")

MAIL_COLUMNS = (
    "id", "sender", "recipients", "subject", "content", "origin", "created_at_ms", "kafka_partition", "kafka_offset",
    "tenant",
)
EVENT_COLUMNS = (
    "id", "mail", "event", "created_at_ms", "created_by", "provider", "outcome",
    "cause", "status", "message_id", "latency_ms", "blob", "kafka_partition", "kafka_offset",
)
HEALTH_COLUMNS = (
    "provider", "state", "opened_at_ms", "probe_owner", "probe_until_ms", "throttled_until_ms", "worker", "reason",
    "created_at_ms", "kafka_partition", "kafka_offset",
)
FEEDBACK_COLUMNS = (
    "id", "provider", "provider_event_id", "message_id", "event", "bounce", "recipient", "reason", "url",
    "created_at_ms", "received_at_ms", "created_by", "kafka_partition", "kafka_offset",
)
_PIPELINE_EVENTS = frozenset(EventType)

# DateTime is seconds in a UInt32; created_at (derived from created_at_ms) must fit it. The last millisecond a
# DateTime column can hold: where the tables' time ends.
LAST_MS = 2**32 * 1000 - 1
_MAX_LATENCY_MS = 2**32 - 1

Row = tuple


class UnusableRecord(ValueError):
    """A record that cannot become a row (undecodable, wrong schema, impossible values)."""


@dataclass(frozen=True)
class Route:
    schema: str
    table: str
    columns: tuple[str, ...]
    to_row: Callable[[dict, int, int], Row | None]


def mail_row(record: dict, partition: int, offset: int) -> Row:
    tenant = record.get("tenant", DEFAULT_TENANT)
    try:
        check_mail_id(record["id"], tenant, record["origin"])
    except InvalidMail as err:
        # Dead-lettered by the dispatcher: stored, it would give this tenant the events of the id's owner.
        raise UnusableRecord(str(err)) from err
    return (
        record["id"], record["sender"], list(record["recipients"]), record["subject"],
        record["content"], record["origin"], _timestamp(record), partition, offset, tenant,
    )


def event_row(record: dict, partition: int, offset: int) -> Row:
    # A client's own event (POST /mails/<id>/events/) keeps its blob verbatim, but nothing in it is read into
    # the columns the pipeline's questions trust: a `message_id` there would join another tenant's feedback.
    detail = _blob_detail(record) if record["event"] in _PIPELINE_EVENTS else {}
    return (
        record["id"], record["mail"], record["event"], _timestamp(record), record["created_by"],
        record["provider"] or "", record["outcome"] or "",
        _text(detail.get("cause")), _text(detail.get("status")), _text(detail.get("message_id")),
        _latency(record["id"], detail.get("latency_ms")), record["blob"], partition, offset,
    )


def health_row(record: dict, partition: int, offset: int) -> Row | None:
    if record["state"] == HealthState.ALIVE:  # liveness, not provider state
        return None
    return (
        record["provider"], record["state"], record["opened_at"], record["probe_owner"], record["probe_until"],
        record["throttled_until"], record["worker"], record["reason"], _timestamp(record, "changed_at"),
        partition, offset,
    )


def feedback_row(record: dict, partition: int, offset: int) -> Row:
    return (
        record["id"], record["provider"], record["provider_event_id"], record["message_id"], record["event"],
        record["bounce"], record["recipient"], record["reason"], record["url"], _timestamp(record, "occurred_at"),
        _timestamp(record, "received_at"), record["created_by"], partition, offset,
    )


ROUTES: dict[str, Route] = {
    topics.REQUESTS: Route(registry.MAIL_REQUEST, "mails", MAIL_COLUMNS, mail_row),
    topics.EVENTS: Route(registry.MAIL_EVENT, "events", EVENT_COLUMNS, event_row),
    topics.HEALTH: Route(registry.PROVIDER_HEALTH, "provider_health", HEALTH_COLUMNS, health_row),
    topics.FEEDBACK: Route(registry.PROVIDER_EVENT, "provider_feedback", FEEDBACK_COLUMNS, feedback_row),
}
COLUMNS: dict[str, tuple[str, ...]] = {route.table: route.columns for route in ROUTES.values()}


def to_row(topic: str, partition: int, offset: int, payload: bytes | None) -> tuple[str, Row | None]:
    """(table, row) for the record read at topic/partition/offset, row None for a record that is not history;
    raises UnusableRecord saying why a record cannot be used."""
    route = ROUTES[topic]
    if topic == topics.HEALTH and not payload:
        return route.table, None  # a worker's read marker
    try:
        schema, record = codec.decode(payload)
    except codec.DecodeError as err:
        raise UnusableRecord(str(err)) from err
    if schema != route.schema:
        raise UnusableRecord(f"{schema} record on {topic}, expected {route.schema}")
    return route.table, route.to_row(record, partition, offset)


def _timestamp(record: dict, field: str = "created_at") -> int:
    value = record[field]
    if not 0 <= value <= LAST_MS:
        raise UnusableRecord(f"{field} {value} ms is outside the storable range")
    return value


def _blob_detail(record: dict) -> dict:
    # The blob is free-form: a blob that is not a JSON object keeps the event (blob stored verbatim)
    # but yields no derived columns.
    if not record["blob"]:
        return {}
    try:
        detail = orjson.loads(record["blob"])
    except orjson.JSONDecodeError as err:
        log.warning("blob_not_json", extra={"event_id": record["id"], "error": str(err)})
        return {}
    if not isinstance(detail, dict):
        log.warning("blob_not_object", extra={"event_id": record["id"]})
        return {}
    return detail


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _latency(event_id: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= _MAX_LATENCY_MS:
        return round(value)
    log.warning("latency_unusable", extra={"event_id": event_id, "latency_ms": value})
    return None
