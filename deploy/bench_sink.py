"""How many events per second the analytics sink writes into ClickHouse: `python -m deploy.bench_sink`.

A broker and a ClickHouse of its own; mail.requests and mail.events filled first with a backlog of
MERCURY_BENCH_SINK_EVENTS events (default 300,000: per mail an accepted, a dispatched and a sent event, stamped
now, with the blobs the dispatcher writes) and their mails; then `python -m analytics.sink` started as it runs
in production (settling the rollups too) and timed from the first row it stored to the last, so the group
join and the process start do not count. Prints `sink_events_rate: N events/s`.
"""
import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from analytics.connection import connect
from analytics.migrate import migrate
from deploy.broker import broker_process
from deploy.clickhouse import clickhouse_process
from deploy.processes import ManagedProcess, free_port
from schemas import codec, registry, topics
from schemas.logs import configure_logging

log = logging.getLogger("mercury.bench.sink")

PARTITIONS = 4
ROOT = Path(__file__).resolve().parents[1]


def produce(bootstrap: str, events: int) -> int:
    """Write the backlog; returns the number of event records."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
            [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)
             for topic in (topics.REQUESTS, topics.EVENTS, topics.HEALTH, topics.FEEDBACK)]).values():
        future.result(timeout=10)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    start = time.time_ns() // 1_000_000
    for n in range(events // 3):
        mail_id, at = uuid.uuid4().hex, start + n // 50
        mail = {"id": mail_id, "sender": "bench@example.com", "recipients": ["reader@example.com"],
                "subject": "bench", "content": "hello", "created_at": at, "origin": "http", "tenant": "default"}
        _send(producer, topics.REQUESTS, mail_id, codec.encode(registry.MAIL_REQUEST, mail))
        for event, provider, outcome, blob in (
            ("accepted", None, None, ""),
            ("dispatched", "mailgun", None, ""),
            ("sent", "mailgun", "accepted", orjson.dumps({"message_id": f"<{n}@mg>", "latency_ms": 40}).decode()),
        ):
            record = {"id": uuid.uuid4().hex, "mail": mail_id, "event": event, "created_at": at + 5,
                      "created_by": "bench", "provider": provider, "outcome": outcome, "blob": blob}
            _send(producer, topics.EVENTS, mail_id, codec.encode(registry.MAIL_EVENT, record))
    if producer.flush(120):
        raise RuntimeError("the backlog was not all written within 120 s")
    return events // 3 * 3


def _send(producer: Producer, topic: str, key: str, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key=key)
            return
        except BufferError:
            producer.poll(0.1)


def stored(client: object) -> int:
    (count,), = client.execute("SELECT count() FROM events")
    return count


def main() -> None:
    configure_logging()
    events = int(os.environ.get("MERCURY_BENCH_SINK_EVENTS", "300000"))
    with tempfile.TemporaryDirectory(prefix="mercury-bench-sink-") as state:
        logs = Path(state) / "logs"
        kafka_port, ch_port = free_port(), free_port()
        broker = broker_process(kafka_port, logs).start()
        clickhouse = clickhouse_process(ch_port, free_port(), Path(state) / "data", logs).start()
        env = {"CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_PORT": str(ch_port), "CLICKHOUSE_DATABASE": "bench"}
        client = connect(env)
        sink = None
        try:
            migrate(client)
            bootstrap = f"127.0.0.1:{kafka_port}"
            written = produce(bootstrap, events)
            log.info("backlog_written", extra={"events": written})
            sink = ManagedProcess(
                "sink", [sys.executable, "-m", "analytics.sink"], logs, ready=lambda: True,
                env={**env, "KAFKA_BOOTSTRAP": bootstrap, "MERCURY_SINK_GROUP": "bench-sink",
                     "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))},
                cwd=ROOT,
            ).start()
            while not (first_rows := stored(client)):
                time.sleep(0.05)
            first = time.monotonic()
            while (rows := stored(client)) < written and time.monotonic() < first + 600:
                time.sleep(0.05)
            print(f"sink_events_rate: {(rows - first_rows) / (time.monotonic() - first):.0f} events/s", flush=True)
        finally:
            if sink is not None:
                sink.stop()
            client.disconnect()
            clickhouse.stop()
            broker.stop()


if __name__ == "__main__":
    main()
