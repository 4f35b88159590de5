"""Test support for the analytics tests: records, a producer that remembers where it wrote, sinks run as
real processes (`python -m analytics.sink`), and ways to look at what they did."""
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
from clickhouse_driver import Client
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from analytics.rows import event_row, mail_row
from analytics.writer import Writer
from deploy.processes import ManagedProcess
from schemas import codec, topics
from schemas.logs import find_events
from schemas.validation import own_mail_id

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
SINK_TOPICS = (topics.REQUESTS, topics.EVENTS, topics.HEALTH, topics.FEEDBACK)


def write_twice(client: Client, mails: list[dict], events: list[dict]) -> None:
    """Rows as the sink makes them, offsets in list order; written twice, as a re-delivery does."""
    writer = Writer(client, threading.Event())
    rows = {
        "mails": [mail_row(mail, 0, offset) for offset, mail in enumerate(mails)],
        "events": [event_row(event, 0, offset) for offset, event in enumerate(events)],
    }
    for _ in range(2):
        assert writer.write(rows)


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> object:
    """Poll until predicate returns something truthy; fail the test naming what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Records:
    """MailRequest and MailEvent records with ids unique to one test."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self._serial = 0

    def new_id(self, kind: str) -> str:
        self._serial += 1
        return f"{kind}-{self.tag}-{self._serial}"

    def mail(self, created_at: int, mail_id: str | None = None, origin: str = "http", tenant: str = "default") -> dict:
        return {
            "id": mail_id or own_mail_id(tenant, self.new_id("mail")), "sender": "alice@example.com",
            "recipients": ["bob@example.com", "carol@example.com"], "subject": f"subject {self.tag}",
            "content": "hello", "created_at": created_at, "origin": origin, "tenant": tenant,
        }

    def event(
        self, mail: str, event: str, created_at: int, provider: str | None = None, outcome: str | None = None,
        **detail: object,
    ) -> dict:
        return {
            "id": self.new_id("event"), "mail": mail, "event": event, "created_at": created_at,
            "created_by": "test", "provider": provider, "outcome": outcome,
            "blob": orjson.dumps(detail).decode() if detail else "",
        }


class Publisher:
    """Produces records and remembers, per partition, the offset after the last one it wrote."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
        self.ends: dict[tuple[str, int], int] = {}
        self._errors: list[str] = []

    def raw(self, topic: str, value: bytes | None, key: str | None = None, partition: int | None = None) -> None:
        extra = {} if partition is None else {"partition": partition}
        while True:
            try:
                self._producer.produce(topic, value, key=key, on_delivery=self._delivered, **extra)
                return
            except BufferError:
                self._producer.poll(0.1)

    def mails(self, mails: list[dict]) -> None:
        for mail in mails:
            self.raw(topics.REQUESTS, codec.encode("mercury.MailRequest", mail), key=mail["id"])

    def events(self, events: list[dict]) -> None:
        for event in events:
            self.raw(topics.EVENTS, codec.encode("mercury.MailEvent", event), key=event["mail"])

    def sentinels(self, records: Records) -> tuple[set[str], set[str]]:
        """One mail and one event on every partition, stamped now; once all are stored, everything
        published before them has been through the sink. Returns (mail ids, event ids)."""
        mail_ids, event_ids = set(), set()
        for partition in range(PARTITIONS):
            mail = records.mail(now_ms(), mail_id=records.new_id("sentinel"))
            event = records.event(mail["id"], "accepted", mail["created_at"])
            self.raw(topics.REQUESTS, codec.encode("mercury.MailRequest", mail), partition=partition)
            self.raw(topics.EVENTS, codec.encode("mercury.MailEvent", event), partition=partition)
            mail_ids.add(mail["id"])
            event_ids.add(event["id"])
        return mail_ids, event_ids

    def flush(self) -> None:
        assert self._producer.flush(30) == 0, "records still unsent after 30 s"
        assert not self._errors, self._errors

    def _delivered(self, err: object, message: Message) -> None:
        if err is not None:
            self._errors.append(str(err))
            return
        key = (message.topic(), message.partition())
        self.ends[key] = max(self.ends.get(key, 0), message.offset() + 1)


def committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The group's committed offsets per partition (negative when nothing is committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        wanted = [TopicPartition(topic, partition) for topic in SINK_TOPICS for partition in range(PARTITIONS)]
        return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(wanted, timeout=10)}
    finally:
        consumer.close()


def stored(client: Client, table: str, ids: set[str]) -> int:
    """How many rows with these ids the table holds, copies counted once (FINAL)."""
    ((count,),) = client.execute(f"SELECT count() FROM {table} FINAL WHERE id IN %(ids)s", {"ids": tuple(ids)})
    return count


def all_stored(client: Client, mail_ids: set[str], event_ids: set[str]) -> bool:
    return stored(client, "mails", mail_ids) == len(mail_ids) and stored(client, "events", event_ids) == len(event_ids)


class SinkRunner:
    """Starts sink processes in a consumer group of one test's own; stops them at teardown."""

    def __init__(self, bootstrap: str, log_dir: Path) -> None:
        self.bootstrap = bootstrap
        self.group = f"analytics-test-{uuid.uuid4().hex[:8]}"
        self.log_dir = log_dir
        self._started: list[ManagedProcess] = []

    def start(self, ch_env: dict[str, str], **env: str) -> ManagedProcess:
        holder: list[ManagedProcess] = []
        proc = ManagedProcess(
            f"sink-{len(self._started)}", [sys.executable, "-m", "analytics.sink"], self.log_dir,
            ready=lambda: bool(find_events(holder[0].tail(500), "sink_assigned")),
            env={
                **ch_env, "KAFKA_BOOTSTRAP": self.bootstrap, "MERCURY_SINK_GROUP": self.group,
                "PYTHONPATH": str(ROOT), **env,
            },
            cwd=ROOT,
        )
        holder.append(proc)
        self._started.append(proc)
        return proc.start()

    def stop_all(self) -> None:
        for proc in self._started:
            proc.stop()
