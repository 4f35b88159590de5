"""Record → row conversion: what the sink stores, and which records it refuses (and why)."""
import logging

import pytest
from pipeline import Records

from analytics.lifecycle import SQL_PARAMS
from analytics.rows import (
    COLUMNS,
    EVENT_COLUMNS,
    FEEDBACK_COLUMNS,
    HEALTH_COLUMNS,
    MAIL_COLUMNS,
    UnusableRecord,
    to_row,
)
from schemas import codec, topics
from schemas.vocabulary import TERMINAL_EVENTS, EventType


def encoded_event(event: dict) -> bytes:
    return codec.encode("mercury.MailEvent", event)


def test_mail_request_becomes_a_mails_row(records: Records) -> None:
    mail = records.mail(1_700_000_000_123, tenant="acme")
    table, row = to_row(topics.REQUESTS, 2, 17, codec.encode("mercury.MailRequest", mail))
    assert table == "mails"
    assert dict(zip(MAIL_COLUMNS, row)) == {
        "id": mail["id"], "sender": mail["sender"], "recipients": mail["recipients"], "subject": mail["subject"],
        "content": "hello", "origin": "http", "created_at_ms": 1_700_000_000_123,
        "kafka_partition": 2, "kafka_offset": 17, "tenant": "acme",
    }


def test_a_mail_request_without_a_tenant_is_the_default_tenants(records: Records) -> None:
    mail = {k: v for k, v in records.mail(1_700_000_000_123).items() if k != "tenant"}
    _, row = to_row(topics.REQUESTS, 2, 17, codec.encode("mercury.MailRequest", mail))
    assert dict(zip(MAIL_COLUMNS, row))["tenant"] == "default"


def test_event_blob_values_become_columns(records: Records) -> None:
    failed = records.event("m", "attempt_failed", 5, "mailgun", "transient", cause="network", status=503)
    sent = records.event("m", "sent", 6, "mailgun", "accepted", message_id="<x@mg>", latency_ms=41.6)
    failed_row = dict(zip(EVENT_COLUMNS, to_row(topics.EVENTS, 1, 5, encoded_event(failed))[1]))
    sent_row = dict(zip(EVENT_COLUMNS, to_row(topics.EVENTS, 1, 5, encoded_event(sent))[1]))
    assert (failed_row["cause"], failed_row["status"], failed_row["latency_ms"]) == ("network", "503", None)
    assert failed_row["blob"] == failed["blob"]
    assert (sent_row["message_id"], sent_row["latency_ms"], sent_row["cause"]) == ("<x@mg>", 42, "")


def test_missing_provider_and_outcome_are_stored_empty(records: Records) -> None:
    row = dict(zip(EVENT_COLUMNS, to_row(topics.EVENTS, 1, 5, encoded_event(records.event("m", "accepted", 1)))[1]))
    assert (row["provider"], row["outcome"], row["blob"]) == ("", "", "")


@pytest.mark.parametrize("blob", ["not json", "[1, 2]", '{"latency_ms": -5}', '{"latency_ms": "fast"}'])
def test_a_bad_blob_keeps_the_event_and_is_logged(
    records: Records, blob: str, caplog: pytest.LogCaptureFixture,
) -> None:
    event = {**records.event("m", "sent", 1, "mailgun", "accepted"), "blob": blob}
    with caplog.at_level(logging.WARNING, logger="mercury.analytics.rows"):
        table, row = to_row(topics.EVENTS, 1, 5, encoded_event(event))
    assert table == "events"
    assert dict(zip(EVENT_COLUMNS, row))["blob"] == blob
    assert dict(zip(EVENT_COLUMNS, row))["latency_ms"] is None
    assert caplog.records, "a blob that yields nothing must be logged"


@pytest.mark.parametrize("payload", [None, b"", b"garbage that is no Avro", b"\x00\x00\x00\x00\x03\xff\xff"])
def test_undecodable_records_are_refused(payload: bytes | None) -> None:
    with pytest.raises(UnusableRecord):
        to_row(topics.EVENTS, 0, 0, payload)


def test_a_record_of_the_wrong_schema_for_its_topic_is_refused(records: Records) -> None:
    with pytest.raises(UnusableRecord, match="MailEvent record on mail.requests"):
        to_row(topics.REQUESTS, 0, 0, encoded_event(records.event("m", "accepted", 1)))


@pytest.mark.parametrize("created_at", [-1, 2**32 * 1000])
def test_a_time_outside_datetime_range_is_refused(records: Records, created_at: int) -> None:
    with pytest.raises(UnusableRecord, match="created_at"):
        to_row(topics.EVENTS, 1, 5, encoded_event(records.event("m", "accepted", created_at)))


def test_every_table_has_its_columns() -> None:
    assert set(COLUMNS) == {"mails", "events", "provider_health", "provider_feedback"}


def health(state: str, **fields: object) -> bytes:
    record = {"provider": "mailgun", "state": state, "opened_at": 0, "probe_owner": "", "probe_until": 0,
              "throttled_until": 0, "worker": "w-1", "reason": "", "changed_at": 1_700_000_000_000, **fields}
    return codec.encode("mercury.ProviderHealth", record)


def test_breaker_changes_become_rows_and_liveness_does_not() -> None:
    table, row = to_row(topics.HEALTH, 0, 9, health("open", opened_at=1_700_000_000_000, reason="TransientError: 503"))
    assert table == "provider_health"
    assert dict(zip(HEALTH_COLUMNS, row)) == {
        "provider": "mailgun", "state": "open", "opened_at_ms": 1_700_000_000_000, "probe_owner": "",
        "probe_until_ms": 0, "throttled_until_ms": 0, "worker": "w-1", "reason": "TransientError: 503",
        "created_at_ms": 1_700_000_000_000, "kafka_partition": 0, "kafka_offset": 9,
    }
    assert to_row(topics.HEALTH, 0, 10, health("alive")) == ("provider_health", None)
    assert to_row(topics.HEALTH, 0, 11, b"") == ("provider_health", None)


def test_provider_feedback_becomes_a_row() -> None:
    record = {"id": "f-1", "provider": "sendgrid", "provider_event_id": "ev-1", "message_id": "abc", "event": "bounced",
              "bounce": "hard", "recipient": "bob@example.com", "reason": "550 no such user", "url": "",
              "occurred_at": 1_700_000_000_000, "received_at": 1_700_000_000_500, "created_by": "ingest/webhooks"}
    table, row = to_row(topics.FEEDBACK, 2, 3, codec.encode("mercury.ProviderEvent", record))
    assert table == "provider_feedback"
    assert dict(zip(FEEDBACK_COLUMNS, row)) == {
        **{k: v for k, v in record.items() if k not in ("occurred_at", "received_at")},
        "created_at_ms": 1_700_000_000_000, "received_at_ms": 1_700_000_000_500,
        "kafka_partition": 2, "kafka_offset": 3,
    }


def test_the_sql_vocabulary_is_the_shared_one() -> None:
    assert set(SQL_PARAMS["terminal"]) == {event.value for event in TERMINAL_EVENTS}
    assert all(SQL_PARAMS[f"event_{event.value}"] == event.value for event in EventType)
