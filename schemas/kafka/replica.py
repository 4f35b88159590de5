"""A compacted topic followed from its beginning into memory, the way every worker shares small state.

Each worker reads the whole topic (all partitions, no consumer group) in a thread and hands records to
the event loop in order. `caught_up()` is a read barrier: the worker writes a marker to every partition
and waits until it has read them all back, so everything written before the call has been applied. It
relies on nothing but the log itself (the local broker reports wrong end offsets).

A topic whose old records no longer matter (the delivery ledger) is read from a point in time instead of
its beginning: the first record at or after it, found by a binary search over the records' own timestamps
(the local broker does not look offsets up by time), a handful of one-record reads per partition.
"""
import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from itertools import count

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from schemas.kafka.publishing import Output

log = logging.getLogger("mercury.schemas.kafka.replica")
# librdkafka's own lines, through Python logging rather than raw to stderr.
kafka_log = logging.getLogger("mercury.schemas.kafka.replica.kafka")
MARKER = "marker/"
BATCH = 500
STATE_FETCH_WAIT_MS = 100

Apply = Callable[[str, bytes], None]
Publish = Callable[[list[Output]], Awaitable[None]]
Since = Callable[[], int]
SEARCH_READ_S = 2.0
SEARCH_TAIL_S = 0.2


class TopicReplica:
    def __init__(self, bootstrap: str, topic: str, instance: str, apply: Apply, publish: Publish,
                 since: Since | None = None) -> None:
        """`since`, if given, says from when (ms since the epoch) a partition read for the first time matters."""
        self.topic = topic
        self._since = since
        self._bootstrap = bootstrap
        self._instance = instance
        self._apply = apply
        self._publish = publish
        self._loop: asyncio.AbstractEventLoop | None = None
        self._partitions: list[int] = []
        self._positions: dict[int, int] = {}
        self._broker_lost = False
        self._markers: dict[str, tuple[set[int], asyncio.Future]] = {}
        self._sequence = count(1)
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start following the topic (idempotent); must be called from the event loop."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._follow, name=f"replica-{self.topic}", daemon=True)
        self._thread.start()

    async def caught_up(self) -> None:
        """Return once every record written to the topic before this call has been applied."""
        self.start()
        await self._loop.run_in_executor(None, self._wait_started)
        if not self._started.is_set():
            await self._loop.create_future()  # closed before the topic was found: never caught up
        key = f"{MARKER}{self._instance}/{next(self._sequence)}"
        done = self._loop.create_future()
        self._markers[key] = (set(self._partitions), done)
        await self._publish([Output(self.topic, key, b"", partition) for partition in self._partitions])
        await done

    def _wait_started(self) -> None:
        """Until the topic's partitions are known, or the replica is closed: a thread left waiting would keep the
        loop's executor, and so asyncio.run, from ever returning."""
        while not self._started.wait(0.1) and not self._stopping.is_set():
            pass

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

    def _follow(self) -> None:
        """Read until closed; after a client failure start again where reading stopped, never from the
        beginning (re-applying old entries could briefly hide newer ones)."""
        while not self._stopping.is_set():
            try:
                self._follow_once()
            except KafkaException as err:
                log.error("replica_failed", extra={"topic": self.topic, "error": str(err), "retry_in_s": 1})
                self._stopping.wait(1)

    def _follow_once(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self._bootstrap,
            "group.id": f"replica-{self._instance}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # State changes are few and not on a mail's path: a longer wait than the mail consumers' costs the
            # local broker (which holds a fetch for its whole wait) fewer fetches, and nobody any latency.
            "fetch.wait.max.ms": STATE_FETCH_WAIT_MS,
            "client.id": f"{self._instance}-{self.topic}",
            "error_cb": self._on_client_error,
            "logger": kafka_log,
        })
        try:
            self._assign_all(consumer)
            while not self._stopping.is_set():
                if self._broker_lost:
                    self._start_over_if_recreated(consumer)
                records = []
                for message in consumer.consume(BATCH, 0.1):
                    if message.error() is None:
                        self._positions[message.partition()] = message.offset() + 1
                        records.append((message.key().decode(), message.value() or b"", message.partition()))
                    elif message.error().code() != KafkaError._PARTITION_EOF:
                        log.error("replica_read_error", extra={"topic": self.topic, "error": str(message.error())})
                if records:
                    self._loop.call_soon_threadsafe(self._apply_all, records)
        finally:
            consumer.close()

    def _on_client_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._broker_lost = True

    def _start_over_if_recreated(self, consumer: Consumer) -> None:
        """A broker that lost its data (the local in-memory one, restarted) comes back with the topic
        re-created and empty, and answers reads past its end with nothing rather than an error: a log that
        ends before where this replica stopped is read again from its beginning."""
        try:
            ends = {p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=2, cached=False)[1]
                    for p in self._partitions}
        except KafkaException:
            return
        self._broker_lost = False
        truncated = [p for p, end in ends.items() if end < self._positions.get(p, 0)]
        if truncated:
            log.warning("replica_log_restarted",
                        extra={"topic": self.topic, "partitions": ",".join(map(str, truncated))})
            for partition in truncated:
                self._positions.pop(partition)
            self._assign_all(consumer)

    def _assign_all(self, consumer: Consumer) -> None:
        while not self._stopping.is_set():
            topic = consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
            if topic is not None and topic.error is None and topic.partitions:
                self._partitions = sorted(topic.partitions)
                break
            log.warning("replica_waiting_for_topic", extra={"topic": self.topic})
            self._stopping.wait(1)
        if self._since is not None:
            self._find_starts([p for p in self._partitions if p not in self._positions], self._since())
        consumer.assign([TopicPartition(self.topic, p, self._positions.get(p, OFFSET_BEGINNING))
                         for p in self._partitions])
        self._started.set()
        log.info("replica_started", extra={"topic": self.topic, "partitions": len(self._partitions)})

    def _find_starts(self, partitions: list[int], since_ms: int) -> None:
        """Where each partition's first record at or after `since_ms` is, with a consumer of its own that fetches
        little and answers at once (the follower's fetches wait for data, and buffer much more)."""
        if not partitions:
            return
        searcher = Consumer({
            "bootstrap.servers": self._bootstrap,
            "group.id": f"replica-{self._instance}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
            "queued.max.messages.kbytes": 1024,
            "client.id": f"{self._instance}-{self.topic}-search",
            "logger": kafka_log,
        })
        try:
            started = time.monotonic()
            for partition in partitions:
                self._positions[partition] = self._first_offset_since(searcher, partition, since_ms)
            log.info("replica_window_found", extra={"topic": self.topic, "partitions": len(partitions),
                                                    "seconds": round(time.monotonic() - started, 2)})
        finally:
            searcher.close()

    def _first_offset_since(self, consumer: Consumer, partition: int, since_ms: int) -> int:
        """The first offset whose record is at or after `since_ms`; the log is in time order but for workers'
        clock differences, which the caller's margin covers."""
        low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=10, cached=False)
        while low < high:
            middle = (low + high) // 2
            found = self._record_at(consumer, partition, middle)
            if found is None or found[1] >= since_ms:
                high = middle
            else:
                low = found[0] + 1
        return self._skip_older(consumer, partition, low, since_ms)

    def _skip_older(self, consumer: Consumer, partition: int, offset: int, since_ms: int) -> int:
        """Read on past older records without applying them: the local broker's end offset is the start of the
        last batch it holds, so the search can stop up to a batch short."""
        consumer.assign([TopicPartition(self.topic, partition, offset)])
        while records := [m for m in consumer.consume(BATCH, SEARCH_TAIL_S) if m.error() is None]:
            for message in records:
                if message.timestamp()[1] >= since_ms:
                    return message.offset()
                offset = message.offset() + 1
        return offset

    def _record_at(self, consumer: Consumer, partition: int, offset: int) -> tuple[int, int] | None:
        """Offset and timestamp of the first record at or after `offset` (None past the end)."""
        consumer.assign([TopicPartition(self.topic, partition, offset)])
        for message in consumer.consume(1, SEARCH_READ_S):
            if message.error() is None:
                return message.offset(), message.timestamp()[1]
            if message.error().code() != KafkaError._PARTITION_EOF:
                raise KafkaException(message.error())
        return None

    def _apply_all(self, records: list[tuple[str, bytes, int]]) -> None:
        for key, value, partition in records:
            if key.startswith(MARKER):
                self._marker_seen(key, partition)
                continue
            try:
                self._apply(key, value)
            except Exception:  # one bad record must not stop a worker from following the others
                log.exception("replica_apply_error", extra={"topic": self.topic, "key": key})

    def _marker_seen(self, key: str, partition: int) -> None:
        waiting = self._markers.get(key)
        if waiting is None:
            return
        pending, done = waiting
        pending.discard(partition)
        if not pending:
            del self._markers[key]
            if not done.done():
                done.set_result(None)
