"""The analytics sink: mail.requests, mail.events, mail.health and mail.feedback → ClickHouse;
`python -m analytics.sink`.

Reads a batch (closed by size or by age), inserts it, and only then commits exactly that batch's
offsets, synchronously. A crash anywhere before the commit means the batch is read again; the tables
de-duplicate what lands twice. Records that cannot become rows are logged with their coordinates and
committed with the batch, so one poison record never stalls the stream.

Configuration (environment): KAFKA_BOOTSTRAP, MERCURY_SINK_GROUP, MERCURY_SINK_BATCH_SIZE,
MERCURY_SINK_BATCH_SECONDS, MERCURY_SINK_FETCH_WAIT_MS, MERCURY_SINK_METRICS_PORT,
MERCURY_RETENTION_DAYS (the sink drops days past it, hourly), and the CLICKHOUSE_* variables of
analytics.connection. The member reading partition 0 of mail.events also settles the rollups the
questions read (analytics.rollups), every few seconds.
"""
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from analytics import metrics
from analytics.batch import Batch
from analytics.connection import connect, database_name
from analytics.retention import DailyRetention, retention_days
from analytics.rollups.settle import Settler
from analytics.rollups.touches import with_touches
from analytics.rows import ROUTES, UnusableRecord, to_row
from analytics.writer import Writer
from schemas import endpoints, topics
from schemas.events import now_ms
from schemas.logs import configure_logging

log = logging.getLogger("mercury.analytics.sink")

PROGRESS_EVERY_S = 10.0
# Looked up once: finding a labelled counter cost more than a record's whole row.
_CONSUMED = {topic: metrics.CONSUMED.labels(topic) for topic in ROUTES}


@dataclass(frozen=True)
class SinkConfig:
    bootstrap: str = "127.0.0.1:9092"
    group: str = "mercury-analytics"
    batch_size: int = 5000
    batch_seconds: float = 0.5
    session_timeout_ms: int = 6000
    # It batches for longer anyway; fuller fetches cost the local broker less (schemas.kafka.timings).
    fetch_wait_ms: int = 200
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "SinkConfig":
        defaults = cls()
        return cls(
            bootstrap=endpoints.kafka_bootstrap(env),
            group=env.get("MERCURY_SINK_GROUP", defaults.group),
            batch_size=int(env.get("MERCURY_SINK_BATCH_SIZE", defaults.batch_size)),
            batch_seconds=float(env.get("MERCURY_SINK_BATCH_SECONDS", defaults.batch_seconds)),
            session_timeout_ms=int(float(env.get("MERCURY_KAFKA_SESSION_TIMEOUT_S", defaults.session_timeout_ms / 1000))
                                   * 1000),
            fetch_wait_ms=int(env.get("MERCURY_SINK_FETCH_WAIT_MS", defaults.fetch_wait_ms)),
            metrics_port=int(port) if (port := env.get("MERCURY_SINK_METRICS_PORT")) else None,
        )


def consumer_config(config: SinkConfig) -> dict[str, object]:
    return {
        "bootstrap.servers": config.bootstrap,
        "group.id": config.group,
        "client.id": "mercury-analytics-sink",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # Tansu completes a join after about half the session timeout (3.6 s at 6 s, 10.6 s at 20 s);
        # 6 s is also the lowest session timeout Apache Kafka accepts by default.
        "session.timeout.ms": config.session_timeout_ms,
        "heartbeat.interval.ms": max(config.session_timeout_ms // 3, 100),
        # Inserts retried during a ClickHouse outage do not poll; past this the member is evicted, its
        # commit is refused, and the batch is read again after the rejoin.
        "max.poll.interval.ms": 300000,
        # Fewer, fuller fetches: the local broker's fetch cost grows with the partition's length, so a
        # fetch per handful of records would dominate its CPU. The sink batches for longer than this anyway.
        "fetch.min.bytes": 256 * 1024,
        "fetch.wait.max.ms": config.fetch_wait_ms,
        "logger": logging.getLogger("mercury.analytics.kafka"),
        "error_cb": _on_client_error,
    }


def _on_client_error(error: KafkaError) -> None:
    # Broker connection trouble is reported here; librdkafka keeps retrying by itself.
    log.warning("kafka_client_error", extra={"code": error.name(), "error": error.str(), "fatal": error.fatal()})


class Sink:
    """The consume → insert → commit loop. Runs in one thread until stop is set."""

    def __init__(self, consumer: Consumer, writer: Writer, batch: Batch, stop: threading.Event,
                 retention: DailyRetention | None = None, settler: Settler | None = None) -> None:
        self._consumer = consumer
        self._writer = writer
        self._batch = batch
        self._stop = stop
        self._retention = retention
        self._settler = settler
        # Only the member reading this partition settles the rollups: one settler per group.
        self._settles = False
        self._subscribed_at = 0.0
        self._assigned_once = False
        self._records = 0
        self._skipped = 0
        self._progress_at = 0.0
        self._progress_records = 0

    def run(self) -> None:
        """Blocks until stop is set; raises KafkaException on a fatal consumer error."""
        self._subscribed_at = self._progress_at = time.monotonic()
        self._consumer.subscribe(
            list(ROUTES), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke,
        )
        log.info("sink_subscribed", extra={"topics": ",".join(ROUTES)})
        while not self._stop.is_set():
            room, wait_s = max(1, self._batch.room()), self._batch.seconds_left()
            for message in self._consumer.consume(num_messages=room, timeout=wait_s):
                self._take(message)
            if self._batch.ready():
                self._flush()
            self._report_progress()
            if self._retention is not None:
                self._retention.tick()
            if self._settler is not None and self._settles:
                self._settler.tick()
        if len(self._batch):
            # Stopping: one last attempt; if it fails the batch stays uncommitted and is read again.
            self._flush()
        log.info("sink_stopped", extra={"records": self._records, "skipped": self._skipped})

    def _take(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            log.warning("consume_error", extra={"topic": message.topic(), "code": error.name(), "error": error.str()})
            return
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        self._records += 1
        _CONSUMED[topic].inc()
        try:
            table, row = to_row(topic, partition, offset, message.value())
        except UnusableRecord as err:
            self._skipped += 1
            metrics.SKIPPED.labels(topic).inc()
            log.warning("record_skipped", extra={
                "topic": topic, "partition": partition, "offset": offset, "reason": str(err),
            })
            self._batch.add(topic, partition, offset)
            return
        if row is None:  # not history (a read marker, a heartbeat): committed with the batch, nothing stored
            metrics.IGNORED.labels(topic).inc()
            self._batch.add(topic, partition, offset)
            return
        self._batch.add(topic, partition, offset, table, row)

    def _flush(self) -> None:
        records = len(self._batch)
        if not self._writer.write(with_touches(self._batch.rows(), now_ms())):
            log.warning("batch_abandoned", extra={"records": records})
            self._batch.clear()
            return
        metrics.BATCH_SIZE.observe(records)
        self._commit(records)
        self._batch.clear()
        self._measure_lag()

    def _commit(self, records: int) -> None:
        offsets = [TopicPartition(topic, part, offset) for (topic, part), offset in self._batch.offsets().items()]
        try:
            results = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as err:
            # The rows are in; uncommitted, the batch is read again later and the tables collapse it.
            log.warning("commit_failed", extra={"error": str(err)})
            return
        for tp in results or []:
            if tp.error is not None:
                log.warning("commit_failed", extra={
                    "topic": tp.topic, "partition": tp.partition, "offset": tp.offset, "error": tp.error.str(),
                })
        log.debug("batch_committed", extra={"records": records, "partitions": len(offsets)})

    def _measure_lag(self) -> None:
        """Per topic: the broker's end of each assigned partition (as last fetched) minus the sink's position."""
        lag: dict[str, int] = {}
        for tp in self._consumer.position(self._consumer.assignment()):
            if tp.offset < 0:
                continue
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - tp.offset)
        for topic, records in lag.items():
            metrics.LAG.labels(topic).set(records)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settles = self._settles or _settling(partitions)
        fields = {"partitions": _names(partitions)}
        if not self._assigned_once:
            self._assigned_once = True
            fields["after_s"] = round(time.monotonic() - self._subscribed_at, 2)
        log.info("sink_assigned", extra=fields)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settles = self._settles and not _settling(partitions)
        dropped = self._batch.drop((tp.topic, tp.partition) for tp in partitions)
        log.info("sink_revoked", extra={"partitions": _names(partitions), "uncommitted_records_dropped": dropped})

    def _report_progress(self) -> None:
        now = time.monotonic()
        if now - self._progress_at < PROGRESS_EVERY_S:
            return
        if self._records != self._progress_records:
            rate = (self._records - self._progress_records) / (now - self._progress_at)
            log.info("sink_progress", extra={
                "records": self._records, "skipped": self._skipped, "records_per_s": round(rate),
            })
        self._progress_at, self._progress_records = now, self._records


def _settling(partitions: list[TopicPartition]) -> bool:
    return any(tp.topic == topics.EVENTS and tp.partition == 0 for tp in partitions)


def _names(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)


def main() -> int:
    configure_logging()
    # The driver logs each failed connect with a traceback; the writer already logs every failure.
    logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)
    config = SinkConfig.from_env()
    days = retention_days()
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("sink_starting", extra={
        "bootstrap": config.bootstrap, "group": config.group,
        "batch_size": config.batch_size, "batch_seconds": config.batch_seconds,
    })
    metrics.serve(config.metrics_port)
    client = connect()
    consumer = Consumer(consumer_config(config))
    try:
        retention = DailyRetention(client, database_name(), days)
        batch = Batch(config.batch_size, config.batch_seconds)
        Sink(consumer, Writer(client, stop), batch, stop, retention, Settler(client)).run()
    except Exception:
        # Nothing uncommitted is lost: the records are read again by the next sink of the group.
        log.exception("sink_failed")
        return 1
    finally:
        consumer.close()
        client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
