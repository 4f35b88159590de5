"""Bad input over HTTP and on the request topic: a clear error, a record of it, and nothing lost."""
import sys

import pytest
import requests
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from deploy.processes import ManagedProcess, free_port, http_ok
from schemas import codec, registry
from tests.e2e.conftest import dead_letters, events_of, gateway, post_mail, unique_subject, wait_for, wait_for_event

GOOD = {"sender": "alice@example.com", "recipients": "bob@example.com", "subject": "s", "content": "c"}


@pytest.mark.parametrize("body, status, field", [
    (b"not json", 400, "body"),
    (b"[1, 2]", 400, "body"),
    ({**GOOD, "sender": "not-an-address"}, 422, "sender"),
    ({k: v for k, v in GOOD.items() if k != "recipients"}, 422, "recipients"),
    ({**GOOD, "recipients": "bob@example.com, @nowhere"}, 422, "recipients"),
    ({**GOOD, "recipients": [1, 2]}, 422, "recipients"),
    ({**GOOD, "subject": "a" * 5000}, 422, "subject"),
    ({**GOOD, "subject": "Hi\r\nBcc: everyone@example.com"}, 422, "subject"),
    ({**GOOD, "priority": "high"}, 422, "priority"),
    (b"x" * (3 * 1024 * 1024), 413, "body"),
])
def test_invalid_input_gets_a_reason_and_a_rejected_event(api, body, status, field):
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = gateway.post(f"{api}/mails/", timeout=10, **kwargs)
    assert response.status_code == status
    answer = response.json()
    assert answer["field"] == field and field in answer["error"]
    events = wait_for(lambda: events_of(api, answer["mail_id"]), what="the rejected event")
    assert [e["event"] for e in events] == ["rejected"]
    assert field in events[0]["blob"]


def test_malformed_records_on_the_request_topic_are_dead_lettered_and_the_pipeline_goes_on(api, stack):
    bad_mail = {"id": "bad-address-" + unique_subject("x")[-12:], "sender": "alice@example.com",
                "recipients": ["not an address"], "subject": "s", "content": "c", "created_at": 1}
    producer = Producer({"bootstrap.servers": stack.config.bootstrap})
    producer.produce("mail.requests", key=b"garbage-1", value=b"\x00\x00\x00\x00\x01\xff\xff\xff")
    producer.produce("mail.requests", key=b"garbage-2", value=b"plain text, not Avro")
    producer.produce("mail.requests", key=b"garbage-3", value=codec.encode("mercury.MailEvent", {
        "id": "e", "mail": "m", "event": "sent", "created_at": 1, "created_by": "x"}))
    producer.produce("mail.requests", key=bad_mail["id"].encode(), value=codec.encode("mercury.MailRequest", bad_mail))
    assert producer.flush(10) == 0

    letters = dead_letters(stack.config.bootstrap,
                           lambda d: d["mail_id"] in {"garbage-1", "garbage-2", "garbage-3", bad_mail["id"]}, 4)
    reasons = {d["mail_id"]: d["reason"] for d in letters}
    assert "does not decode" in reasons["garbage-1"]
    assert "magic byte" in reasons["garbage-2"]
    assert "MailEvent" in reasons["garbage-3"]
    assert "not a valid address" in reasons[bad_mail["id"]]
    assert all(d["outcome"] == "malformed" for d in letters)
    assert {d["source_topic"] for d in letters} == {"mail.requests"}
    kinds = [e["event"] for e in wait_for_event(api, bad_mail["id"], "dead_lettered")]
    assert kinds == ["rejected", "dead_lettered"]

    after = post_mail(api, unique_subject("after-garbage"))
    wait_for_event(api, after, "sent")


def test_an_outside_producer_with_avro_serializer_is_delivered(api, stack, sandbox):
    registry_client = SchemaRegistryClient({"url": f"{stack.config.api_url}/schema-registry"})
    schema = registry.by_name("mercury.MailRequest")
    serializer = AvroSerializer(registry_client, (registry.AVRO_DIR / "mercury.MailRequest.avsc").read_text())
    subject = unique_subject("outside")
    mail = {"id": "outside-" + subject[-12:], "sender": "shop@example.com", "recipients": ["bob@example.com"],
            "subject": subject, "content": "Your order", "created_at": 1_700_000_000_000, "origin": "kafka"}
    value = serializer(mail, SerializationContext("mail.requests", MessageField.VALUE))
    assert value[1:5] == schema.id.to_bytes(4, "big")
    producer = Producer({"bootstrap.servers": stack.config.bootstrap})
    producer.produce("mail.requests", key=mail["id"].encode(), value=value)
    assert producer.flush(10) == 0
    events = wait_for_event(api, mail["id"], "sent")
    assert [e["event"] for e in events] == ["accepted", "dispatched", "sent"]
    assert events[0]["created_at"] == mail["created_at"]
    assert sum(sandbox.received(subject).values()) == 1


def test_a_foreign_schema_is_refused_by_the_registry(stack):
    response = requests.post(f"{stack.config.api_url}/schema-registry/subjects/mail.requests-value/versions",
                             json={"schema": '{"type": "record", "name": "Other", "fields": []}'}, timeout=5)
    assert response.status_code == 409


def start_ingest(stack, log_dir, **env: str) -> tuple[ManagedProcess, str]:
    """A second gateway beside the stack's, with some of its settings replaced."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1.0"
    ingest = ManagedProcess(
        "ingest-alone", [sys.executable, "-m", "ingest"], log_dir, ready=lambda: http_ok(f"{url}/"),
        env={**stack.config.child_env(), "MERCURY_INGEST_PORT": str(port), **env},
    )
    return ingest.start(), url


def test_broker_unreachable_answers_503_never_202(stack, tmp_path):
    """A gateway that never reached the broker cannot know the keys either: 503, never 401 or 202."""
    ingest, url = start_ingest(stack, tmp_path, KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
                               MERCURY_KAFKA_DELIVERY_TIMEOUT_MS="2000")
    try:
        for _ in range(3):
            response = gateway.post(f"{url}/mails/", json=GOOD, timeout=15)
            assert response.status_code == 503
            assert response.headers["Retry-After"]
            assert "API keys cannot be checked now" in response.json()["error"]
    finally:
        ingest.stop()


def test_history_store_unreachable_answers_503(stack, tmp_path):
    ingest, url = start_ingest(stack, tmp_path, CLICKHOUSE_PORT=str(free_port()))
    try:
        response = gateway.get(f"{url}/mails/", timeout=15)
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert "store is unavailable" in response.json()["error"]
        assert gateway.post(f"{url}/mails/", json=GOOD, timeout=15).status_code == 202
    finally:
        ingest.stop()
