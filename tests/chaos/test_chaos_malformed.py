"""Bad input in the middle of the steady load. Records no gateway checked, published straight to mail.requests
(and one to a retry topic) by an outside producer: each must end in mail.dead with a reason, and the normal
mails around them must all be delivered. And pairs of requests racing under one Idempotency-Key with
different bodies, spread over the gateway's processes: never two 202s and a silent drop."""
import struct
import threading
import time
import uuid

import requests
from confluent_kafka import KafkaError, Producer

from schemas import codec, registry, topics
from schemas.events import now_ms
from schemas.validation import MAX_MAIL_BYTES
from schemas.vocabulary import IDEMPOTENCY_HEADER, EventType
from tests.chaos.accounting import dead_letters, received
from tests.chaos.harness import Chaos

WARM_S = 3.0
ROUNDS = 2
# Over the mail size limit, still under the broker's record size limit.
OVERSIZED_CONTENT_BYTES = MAX_MAIL_BYTES + 1
REQUEST = registry.MAIL_REQUEST


def request(mail_id: str, recipients: list[str] | None = None, content: str = "hello") -> dict:
    return {"id": mail_id, "sender": "alice@example.com", "recipients": recipients or ["bob@example.com"],
            "subject": f"chaos outside {mail_id}", "content": content, "created_at": now_ms(), "origin": "kafka"}


def malformed(tag: str) -> dict[str, bytes]:
    """Record values by key; the key is also the mail id of those that decode."""
    good = codec.encode(REQUEST, request(f"{tag}-template"))
    return {
        f"{tag}-garbage": b"\xde\xad\xbe\xef not a record at all",
        f"{tag}-wrong-magic": b"\x01" + good[1:],
        f"{tag}-unknown-schema": good[:1] + struct.pack(">I", 9999) + good[5:],
        f"{tag}-bad-address": codec.encode(REQUEST, request(f"{tag}-bad-address", ["not an address"])),
        f"{tag}-oversized": codec.encode(REQUEST, request(f"{tag}-oversized", content="x" * OVERSIZED_CONTENT_BYTES)),
    }


def oversized_retry(tag: str) -> dict[str, bytes]:
    """A retry record as only an outside producer could write it: its mail over every limit."""
    mail = request(f"{tag}-oversized-retry", content="x" * OVERSIZED_CONTENT_BYTES)
    return {mail["id"]: codec.encode("mercury.RetryRecord", {"mail": mail, "level": 0, "due_at": now_ms(),
                                                             "excluded": [], "last_error": "outside"})}


def publish(bootstrap: str, records: dict[str, bytes], topic: str = topics.REQUESTS) -> None:
    """Publish one record a second, as an outside confluent-kafka producer would; fail unless each was acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failures: list[KafkaError] = []
    for key, value in records.items():
        producer.produce(topic, key=key, value=value,
                         on_delivery=lambda err, _msg: failures.append(err) if err else None)
        producer.poll(0)
        time.sleep(1)
    assert producer.flush(30) == 0 and not failures, f"outside records not acknowledged: {failures}"


def test_malformed_and_oversized_records_are_dead_lettered_while_the_load_is_delivered(
        chaos: Chaos) -> None:
    sent: dict[str, bytes] = {}
    with chaos.load("malformed") as load:
        for _ in range(ROUNDS):
            time.sleep(WARM_S)
            tag = f"chaos-{uuid.uuid4().hex[:8]}"
            batch = malformed(tag)
            publish(chaos.bootstrap, batch)
            retry = oversized_retry(tag)
            publish(chaos.bootstrap, retry, topics.retry_topic(0))
            sent.update(batch | retry)
        time.sleep(WARM_S)
    chaos.settle(list(sent))
    letters = dead_letters(chaos.bootstrap)
    for key, letter in letters.items():
        if key in sent:
            print(f"chaos dead_letter key={key} outcome={letter['outcome']} reason={letter['reason'][:120]!r}")
    with_reason = [key for key in sent if letters.get(key, {}).get("reason")]
    result = chaos.finish("malformed_records", load.accepted(), malformed=len(sent),
                          malformed_dead_lettered=len(with_reason))
    chaos.assert_passed(result)
    missing = sorted(set(sent) - set(with_reason))
    assert not missing, f"not dead-lettered with a reason: {missing}"


PAIRS = 20


def post_pair(chaos: Chaos, key: str, subjects: tuple[str, str]) -> list[requests.Response]:
    """Both bodies at once, each on a connection of its own (so over every gateway process)."""
    answers: list[requests.Response] = []

    def post(subject: str) -> None:
        answers.append(requests.post(f"{chaos.api}/mails/", timeout=15, json={
            "sender": "alice@example.com", "recipients": "bob@example.com", "subject": subject, "content": subject},
            headers={"Authorization": f"Bearer {chaos.stack.admin_key}", IDEMPOTENCY_HEADER: key}))

    threads = [threading.Thread(target=post, args=(subject,)) for subject in subjects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_racing_requests_under_one_key_with_different_bodies_never_end_in_silence(chaos: Chaos) -> None:
    twice, once = [], 0
    for n in range(PAIRS):
        key = f"race-{uuid.uuid4().hex}"
        answers = post_pair(chaos, key, (f"race {key} a", f"race {key} b"))
        accepted = [a.json()["id"] for a in answers if a.status_code == 202]
        assert all(a.status_code in (202, 422) for a in answers), [a.text for a in answers]
        assert accepted, "the first of the two is always accepted"
        once += len(accepted) == 1
        if len(accepted) == 2:
            twice.append(accepted[0])
    accepted_ids = list(set(twice))
    chaos.settle(accepted_ids)
    receipts = received(chaos.sandbox)
    rows = chaos.clickhouse().execute(
        "SELECT mail, blob FROM events FINAL WHERE event = %(event)s AND mail IN %(ids)s",
        {"event": str(EventType.REJECTED), "ids": tuple(accepted_ids) or ("",)})
    conflicts = {mail for mail, blob in rows if IDEMPOTENCY_HEADER in blob}
    chaos.record(f"chaos case=idempotency_race pairs={PAIRS} refused_by_gateway={once} both_accepted={len(twice)} "
                 f"conflict_reported={len(conflicts)}")
    for mail_id in twice:
        assert receipts[mail_id] == 1, f"{mail_id}: sent {receipts[mail_id]} times"
        assert mail_id in conflicts, f"{mail_id}: two 202s and no rejected event naming the conflict"
