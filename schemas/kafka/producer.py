"""An asyncio face on confluent-kafka's producer: `await send(...)` returns once the broker acknowledged.

Shared by every component that writes Mercury records from asyncio code (the gateway, the dispatcher):
librdkafka does the batching and retries in C, which costs a fraction of a pure-Python client per record.

The producer is idempotent with acks=all, so an answered await means the record is durably on the
partition leader and its in-sync replicas. While every broker is unreachable, `send` fails at once
instead of waiting out the delivery timeout, so the gateway can answer 503 quickly. A broker that lost
its state (a restarted in-memory broker forgets producer ids) never accepts an idempotent producer's
records again, so a timed-out record or a fatal client error makes the producer start over with a fresh
client.
"""
import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Producer

from schemas.kafka.timings import KafkaTimings

log = logging.getLogger("mercury.producer")
# librdkafka's own lines (a connection refused, a broker gone), through Python logging rather than raw to stderr.
kafka_log = logging.getLogger("mercury.producer.kafka")
RENEW_EVERY_S = 2.0


class BrokerUnavailable(RuntimeError):
    """The record was not acknowledged; the caller must not report it as accepted."""


class MaybeWritten(BrokerUnavailable):
    """The record reached the client's queue but no acknowledgement came: the broker may have written it anyway
    (a timeout is "possibly persisted"), so the caller must say it does not know, not that nothing was written."""


class RecordRefused(BrokerUnavailable):
    """The client or the broker refuses this record for good (too large, invalid): sending it again cannot help."""


# Errors that name the record, not the broker's state: retrying would wedge the partition behind it.
REFUSED_FOR_GOOD = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE,
                              KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD})


@dataclass(frozen=True, slots=True)
class Output:
    """One record to write; `partition` -1 lets the key choose it."""

    topic: str
    key: str
    value: bytes
    partition: int = -1


class AsyncProducer:
    def __init__(self, bootstrap: str, delivery_timeout_ms: int = 5000, name: str = "mercury",
                 max_record_bytes: int = 1_000_000, linger_ms: int = KafkaTimings.linger_ms) -> None:
        # librdkafka reports every record within its delivery timeout; past this bound the report was lost.
        self._report_deadline_s = delivery_timeout_ms / 1000 + 5
        self._config = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "message.timeout.ms": delivery_timeout_ms,
            "socket.connection.setup.timeout.ms": 3000,
            "client.id": name,
            "message.max.bytes": max_record_bytes,
            "error_cb": self._on_error,
            "logger": kafka_log,
        }
        self._producer = Producer(self._config)
        self._retired: list[Producer] = []
        self._renew = False
        self._renewed_at = 0.0
        self._brokers_down = False
        self._last_probe = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._settled: list[tuple[asyncio.Future, KafkaError | None]] = []
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._poller.start()

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_down = True
        if err.fatal():
            # An idempotent producer that lost its sequence with the broker never produces again.
            self._renew = True
        log.warning("kafka_error", extra={"code": err.name(), "reason": err.str()})

    def _poll_loop(self) -> None:
        """Delivery reports of one poll wake the event loop once, not once per record."""
        while not self._stopping.is_set():
            self._producer.poll(0.05)
            self._poll_retired()
            if self._settled:
                settled, self._settled = self._settled, []
                self._loop.call_soon_threadsafe(_settle_all, settled)
            if self._renew and time.monotonic() - self._renewed_at >= RENEW_EVERY_S:
                self._start_over()

    def _start_over(self) -> None:
        """Swap in a fresh client; the old one is polled until its last records are reported."""
        self._renew, self._renewed_at = False, time.monotonic()
        self._retired.append(self._producer)
        self._producer = Producer(self._config)
        log.warning("producer_renewed")

    def _poll_retired(self) -> None:
        for old in list(self._retired):
            old.poll(0)
            if len(old) == 0:
                self._retired.remove(old)

    async def send(self, topic: str, key: str, value: bytes, partition: int = -1) -> None:
        """Block the caller (not the loop) until the broker acknowledged; raises BrokerUnavailable when the
        record was not handed over, its MaybeWritten when it was but no acknowledgement came, or its RecordRefused
        when this record can never be written.

        `partition` -1 lets the key choose it; a reader's marker names each partition explicitly."""
        (failure,) = await self.send_all([Output(topic, key, value, partition)])
        if failure is not None:
            raise failure

    async def send_all(self, records: Sequence[Output]) -> list[BrokerUnavailable | None]:
        """Send every record at once and wait until each is acknowledged or failed: what `send` does for each,
        with one wake-up of the caller for all of them rather than one per record (a batch of mails, a mail's
        events). Raises nothing: each record's entry is None once acknowledged, else the error `send` would have
        raised."""
        if not records:
            return []
        loop = self._loop = asyncio.get_running_loop()
        if self._brokers_down and not await self._probe(loop):
            return [BrokerUnavailable("no Kafka broker is reachable") for _ in records]
        failures: list[BrokerUnavailable | None] = [None] * len(records)
        reported = [False] * len(records)
        waiting = len(records)
        done: asyncio.Future = loop.create_future()

        def reporter(index: int) -> Callable[[KafkaError | None, object], None]:
            def on_delivery(err: KafkaError | None, _msg: object) -> None:
                nonlocal waiting
                failures[index], reported[index] = _failure(err), True
                self._note_report(err)
                waiting -= 1
                if waiting == 0:
                    self._settled.append((done, None))
            return on_delivery

        for index, record in enumerate(records):
            try:
                self._produce(record.topic, record.key, record.value, record.partition, reporter(index))
            except BrokerUnavailable as err:
                failures[index], reported[index] = err, True
                waiting -= 1
        if waiting:
            # A plain timer, not wait_for: this runs for every mail, and wait_for's timeout scope cost more than
            # the rest of the wait.
            timer = loop.call_later(self._report_deadline_s, _settle_all, [(done, None)])
            try:
                await done
            finally:
                timer.cancel()
            if waiting:
                # Reports may still come for the records left; what each says is no longer awaited.
                failures = [failure if seen else MaybeWritten("no delivery report from the Kafka client")
                            for failure, seen in zip(failures, reported)]
        if any(failure is None for failure in failures):
            self._brokers_down = False
        return failures

    def _produce(self, topic: str, key: str, value: bytes, partition: int,
                 on_delivery: Callable[[KafkaError | None, object], None]) -> None:
        """Hand one record to the client; raises RecordRefused or BrokerUnavailable when it does not take it."""
        try:
            self._producer.produce(topic, value=value, key=key, partition=partition, on_delivery=on_delivery)
        except (BufferError, KafkaException) as err:
            if isinstance(err, KafkaException) and err.args[0].code() in REFUSED_FOR_GOOD:
                raise RecordRefused(f"the producer refused the record for good: {err.args[0].str()}") from err
            if isinstance(err, KafkaException) and err.args[0].fatal():
                self._renew = True
            raise BrokerUnavailable(f"the producer refused the record: {err}") from err

    def _note_report(self, err: KafkaError | None) -> None:
        """Called from the poll thread for each delivery report: a timed-out record means a fresh client."""
        if err is not None and err.code() == KafkaError._MSG_TIMED_OUT:
            self._renew = True

    async def _probe(self, loop: asyncio.AbstractEventLoop) -> bool:
        """At most one metadata request per second while the broker is down; the rest fail at once."""
        now = loop.time()
        if now - self._last_probe < 1.0:
            return False
        self._last_probe = now
        try:
            await loop.run_in_executor(None, lambda: self._producer.list_topics(timeout=0.5))
        except KafkaException:
            return False
        self._brokers_down = False
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is in flight, then stop the poll thread."""
        remaining = self._producer.flush(timeout)
        if remaining:
            log.error("producer_close_unflushed", extra={"count": remaining})
        self._stopping.set()
        self._poller.join(timeout)


def _failure(err: KafkaError | None) -> BrokerUnavailable | None:
    """What a delivery report means for the sender: None when the record was acknowledged."""
    if err is None:
        return None
    if err.code() in REFUSED_FOR_GOOD:
        return RecordRefused(f"the broker refused the record for good: {err.str()}")
    return MaybeWritten(f"the broker did not acknowledge the record: {err.str()}")


def _settle_all(settled: list[tuple[asyncio.Future, KafkaError | None]]) -> None:
    for future, err in settled:
        if not future.done():
            future.set_result(err)
