"""The delivery ledger remembers a window, not the history, and never goes back to an older entry."""
import io
import time
import uuid

from confluent_kafka import Producer
from fastavro import schemaless_writer

from dispatcher.ledger import SENDING, SENT, DeliveryLedger
from schemas import codec, registry
from schemas.events import now_ms
from schemas.kafka.publishing import Output
from schemas.kafka.replica import TopicReplica

WINDOW_S = 60


async def _nothing(_outputs: list[Output]) -> None:
    return None


def entry(mail_id: str, state: str, worker: str, at: int) -> bytes:
    return codec.encode("mercury.LedgerEntry", {"mail_id": mail_id, "state": state, "worker": worker,
                                                "provider": "mailgun", "message_id": "", "until": 0, "at": at})


def test_reading_back_an_older_own_entry_does_not_hide_the_newer_one() -> None:
    ledger = DeliveryLedger("me", _nothing, WINDOW_S, topic="ledger")
    sending = ledger.output("m1", SENDING, "mailgun", until=now_ms() + 5000)
    sent = ledger.output("m1", SENT, "mailgun", "msg-1")
    ledger.apply("m1", sending.value)
    assert ledger.lookup("m1").state == SENT
    ledger.apply("m1", sent.value)
    assert ledger.lookup("m1").state == SENT


def test_other_workers_entries_apply_in_log_order() -> None:
    ledger = DeliveryLedger("me", _nothing, WINDOW_S, topic="ledger")
    at = now_ms()
    ledger.apply("m1", entry("m1", SENT, "other", at))
    # Another worker's clock may run behind: its later entry still wins, the log decides.
    ledger.apply("m1", entry("m1", "failed", "third", at - 5000))
    assert ledger.lookup("m1").state == "failed"


def test_entries_older_than_the_window_are_forgotten_as_newer_ones_arrive() -> None:
    ledger = DeliveryLedger("me", _nothing, WINDOW_S, topic="ledger")
    old = now_ms() - (WINDOW_S + 10) * 1000
    for n in range(1000):
        ledger.apply(f"old-{n}", entry(f"old-{n}", SENT, "other", old + n))
    ledger.apply("new", entry("new", SENT, "other", now_ms()))
    assert len(ledger) == 1 and ledger.lookup("old-999") is None and ledger.lookup("new").state == SENT


def test_a_starting_worker_reads_the_ledger_from_its_window_not_from_the_beginning(fleet) -> None:
    topic = fleet.ledger_topic
    producer = Producer({"bootstrap.servers": fleet.bootstrap, "linger.ms": 50})
    now = int(time.time() * 1000)
    history = 20_000
    for n in range(history):  # a week of history, oldest first, over every partition
        at = now - 7 * 86_400_000 + n * (7 * 86_400_000 // history) - 3_600_000
        producer.produce(topic, key=f"old-{n}", value=entry(f"old-{n}", SENT, "other", at), timestamp=at)
    recent = [uuid.uuid4().hex for _ in range(20)]
    for mail_id in recent:
        producer.produce(topic, key=mail_id, value=entry(mail_id, SENT, "other", now), timestamp=now)
    assert producer.flush(30) == 0

    ledger = DeliveryLedger("starting", fleet.publisher.publish, WINDOW_S, topic=topic)
    applied: list[str] = []

    def counting(key: str, value: bytes) -> None:
        applied.append(key)
        ledger.apply(key, value)

    replica = TopicReplica(fleet.bootstrap, topic, "starting", counting, fleet.publisher.publish,
                           since=ledger.window_start)
    fleet.replicas.append(replica)
    fleet.run(replica.caught_up())
    assert sorted(applied) == sorted(recent), f"read {len(applied)} entries"
    assert all(ledger.lookup(mail_id).state == SENT for mail_id in recent)


def test_an_entry_written_before_digests_reads_with_none() -> None:
    body = io.BytesIO()
    schemaless_writer(body, registry.schemas()[6].parsed, {"mail_id": "m1", "state": SENT, "worker": "w",
                                                           "provider": "p", "message_id": "", "until": 0,
                                                           "at": now_ms()})
    legacy = b"\x00\x00\x00\x00\x06" + body.getvalue()  # written by a worker before the upgrade
    ledger = DeliveryLedger("me", _nothing, WINDOW_S, topic="ledger")
    ledger.apply("m1", legacy)
    assert ledger.lookup("m1").digest == ""
