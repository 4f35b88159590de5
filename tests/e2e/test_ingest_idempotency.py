"""Idempotency-Key and send_at over HTTP, against the whole running stack."""
import hashlib
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import orjson
import pytest
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from sandbox_client import Sandbox

from deploy.processes import ManagedProcess, free_port, http_ok
from ingest.mails.idempotency import mail_id_for
from schemas import codec, topics
from schemas.events import now_ms
from schemas.validation import MAX_SCHEDULE_DAYS
from tests.e2e.conftest import events_of, gateway, unique_subject, wait_for, wait_for_event

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def mail_body(subject: str, **extra: object) -> bytes:
    return orjson.dumps({"sender": "alice@example.com", "recipients": "bob@example.com", "subject": subject,
                         "content": "hello", **extra})


def post(api: str, body: bytes, key: str | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return gateway.post(f"{api}/mails/", data=body, headers=headers, timeout=15)


def requests_on_topic(bootstrap: str, mail_id: str, timeout: float = 30.0) -> list[dict]:
    """Every record on mail.requests keyed by the mail id, read up to the end the topic has now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topics.REQUESTS, timeout=10).topics[topics.REQUESTS].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topics.REQUESTS, p), timeout=10)[1]
                for p in partitions}
        unread = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topics.REQUESTS, p, OFFSET_BEGINNING) for p in unread])
        found: list[dict] = []
        deadline = time.monotonic() + timeout
        while unread and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                if message.error() is not None:
                    continue
                if message.key() == mail_id.encode():
                    found.append(codec.decode(message.value())[1])
                if message.offset() >= ends[message.partition()] - 1:
                    unread.discard(message.partition())
        assert not unread, f"mail.requests partitions {sorted(unread)} not read to their end"
        return found
    finally:
        consumer.close()


def copies_in_sandbox(sandbox: Sandbox, mail_id: str) -> int:
    """How often the providers received this mail: it travels as Mailgun `v:mercury-id`, SendGrid `mercury_id`."""
    return sum(1 for provider in sandbox.ports for message in sandbox.messages(provider)
               if mail_id in (message["custom"].get("mercury-id"), message["custom"].get("mercury_id")))


def assert_accepted(response: requests.Response, mail_id: str, replayed: bool, **extra: object) -> None:
    assert response.status_code == 202, response.text
    url = f"/api/v1.0/mails/{mail_id}"
    assert response.json() == {"id": mail_id, "status": "accepted", "url": url, **extra}
    assert response.headers["Location"] == url and response.headers["MailId"] == mail_id
    assert response.headers.get("Idempotent-Replayed") == ("true" if replayed else None)


@pytest.fixture(scope="module")
def gateways(stack, tmp_path_factory) -> Iterator[dict[str, str]]:
    """Two more single-process gateways beside the stack's: a fresh one (an empty key cache, as after a
    restart) and one whose ClickHouse is unreachable."""
    log_dir = tmp_path_factory.mktemp("gateways")
    started: list[ManagedProcess] = []
    urls: dict[str, str] = {}
    try:
        for name, env in {"fresh": {}, "no_clickhouse": {"CLICKHOUSE_PORT": str(free_port())}}.items():
            port = free_port()
            url = f"http://127.0.0.1:{port}/api/v1.0"
            started.append(ManagedProcess(
                f"ingest-{name}", [sys.executable, "-m", "ingest"], log_dir, ready=lambda u=url: http_ok(f"{u}/"),
                env={**stack.config.child_env(), "MERCURY_INGEST_PORT": str(port), "MERCURY_INGEST_WORKERS": "1",
                     **env},
            ).start())
            urls[name] = url
        yield urls
    finally:
        for process in started:
            process.stop()


def test_a_retry_with_the_same_key_gets_the_first_mail_back_and_it_is_sent_once(api, stack, sandbox):
    key = f"order-{uuid.uuid4()}"
    subject = unique_subject("idempotent")
    body = mail_body(subject)
    mail_id = mail_id_for(key)

    assert_accepted(post(api, body, key), mail_id, replayed=False)
    events = wait_for_event(api, mail_id, "sent")
    for _ in range(4):  # the stack's gateway runs two processes: retries reach both
        assert_accepted(post(api, body, key), mail_id, replayed=True)

    assert len(requests_on_topic(stack.config.bootstrap, mail_id)) == 1
    assert copies_in_sandbox(sandbox, mail_id) == 1
    assert [e["event"] for e in events_of(api, mail_id)] == [e["event"] for e in events]
    [accepted] = [e for e in events if e["event"] == "accepted"]
    detail = orjson.loads(accepted["blob"])
    assert detail["idempotency_key"] == key
    assert detail["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_a_restarted_gateway_finds_the_key_in_clickhouse(api, stack, gateways):
    key = str(uuid.uuid4())
    send_at = now_ms() + HOUR_MS
    body = mail_body(unique_subject("restart"), send_at=send_at)
    mail_id = mail_id_for(key)
    assert_accepted(post(api, body, key), mail_id, replayed=False, send_at=send_at)
    wait_for_event(api, mail_id, "accepted")

    assert_accepted(post(gateways["fresh"], body, key), mail_id, replayed=True, send_at=send_at)
    refused = post(gateways["fresh"], mail_body(unique_subject("restart, another body")), key)
    assert refused.status_code == 422
    assert refused.json()["field"] == "Idempotency-Key"
    assert len(requests_on_topic(stack.config.bootstrap, mail_id)) == 1


def test_the_same_key_with_another_body_is_refused_and_the_first_mail_is_untouched(api, stack):
    key = str(uuid.uuid4())
    mail_id = mail_id_for(key)
    assert_accepted(post(api, mail_body(unique_subject("first")), key), mail_id, replayed=False)
    wait_for_event(api, mail_id, "sent")

    refused = post(api, mail_body(unique_subject("second")), key)
    assert refused.status_code == 422
    answer = refused.json()
    assert answer["field"] == "Idempotency-Key" and "was used for a different request" in answer["error"]
    assert answer["mail_id"] != mail_id
    rejected = wait_for(lambda: events_of(api, answer["mail_id"]), what="the rejected event")
    assert [e["event"] for e in rejected] == ["rejected"]
    assert "rejected" not in [e["event"] for e in events_of(api, mail_id)]
    assert len(requests_on_topic(stack.config.bootstrap, mail_id)) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\xe9"])
def test_a_malformed_key_is_refused_with_a_reason_and_a_rejected_event(api, key):
    response = post(api, mail_body(unique_subject("bad key")), key)
    assert response.status_code == 400
    answer = response.json()
    assert answer["field"] == "Idempotency-Key" and "printable ASCII" in answer["error"]
    events = wait_for(lambda: events_of(api, answer["mail_id"]), what="the rejected event")
    assert [e["event"] for e in events] == ["rejected"]


def test_without_clickhouse_a_keyed_mail_is_refused_with_503_and_nothing_is_published(api, stack, gateways):
    """Publishing unchecked would be safe only within the dispatchers' ledger window, and a retry may come later."""
    key = str(uuid.uuid4())
    mail_id = mail_id_for(key)
    refused = post(gateways["no_clickhouse"], mail_body(unique_subject("no clickhouse")), key)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert "Idempotency-Key cannot be checked" in refused.json()["error"]
    unkeyed = post(gateways["no_clickhouse"], mail_body(unique_subject("no clickhouse, no key")))
    assert unkeyed.status_code == 202, "a mail without a key does not need the history"
    assert_accepted(post(api, mail_body(unique_subject("no clickhouse, later")), key), mail_id, replayed=False)
    assert len(requests_on_topic(stack.config.bootstrap, mail_id)) == 1


def test_without_a_key_every_post_is_a_new_mail(api):
    body = mail_body(unique_subject("no key"))
    first, second = post(api, body), post(api, body)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]
    assert "Idempotent-Replayed" not in second.headers


def in_an_hour() -> datetime:
    return datetime.fromtimestamp((now_ms() + HOUR_MS) // 1000, timezone(timedelta(hours=2)))


@pytest.mark.parametrize("send_at, expected", [
    (lambda: in_an_hour().isoformat(), lambda value: int(datetime.fromisoformat(value).timestamp()) * 1000),
    (lambda: in_an_hour().astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
     lambda value: int(datetime.fromisoformat(value).timestamp()) * 1000),
    (lambda: now_ms() + HOUR_MS, lambda value: value),
])
def test_send_at_is_answered_and_carried_to_the_request_topic(api, stack, send_at, expected):
    value = send_at()
    response = post(api, mail_body(unique_subject("scheduled"), send_at=value))
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["send_at"] == expected(value)
    [record] = requests_on_topic(stack.config.bootstrap, answer["id"])
    assert record["send_at"] == answer["send_at"] and record["origin"] == "http"


def test_a_send_at_in_the_past_means_now(api):
    response = post(api, mail_body(unique_subject("past"), send_at="2020-01-01T00:00:00+00:00"))
    assert response.status_code == 202, response.text
    assert response.json()["send_at"] == 1_577_836_800_000
    wait_for_event(api, response.json()["id"], "sent")


@pytest.mark.parametrize("send_at, problem", [
    (lambda: "2030-01-01T09:00:00", "no timezone"),
    (lambda: (datetime.now(timezone.utc) + timedelta(days=MAX_SCHEDULE_DAYS + 1)).isoformat(), "days ahead"),
    (lambda: now_ms() + (MAX_SCHEDULE_DAYS + 1) * DAY_MS, "days ahead"),
    (lambda: "next tuesday", "RFC 3339"),
    (lambda: {"at": 1}, "must be"),
])
def test_a_bad_send_at_is_refused_naming_the_field(api, send_at, problem):
    response = post(api, mail_body(unique_subject("bad send_at"), send_at=send_at()))
    assert response.status_code == 422
    answer = response.json()
    assert answer["field"] == "send_at" and problem in answer["error"]
    events = wait_for(lambda: events_of(api, answer["mail_id"]), what="the rejected event")
    assert [e["event"] for e in events] == ["rejected"]
