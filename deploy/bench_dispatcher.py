"""`make bench` (dispatchers alone): how many sends a second 1, 2 and 4 dispatcher workers make, and their CPU per mail.

No gateway and no ClickHouse: a broker, the sandbox providers answering at once (no webhooks back) and the
workers. Once the workers have joined, MERCURY_BENCH_MAILS mails (default 20,000) are written to the request
topic in one go, as the gateway would write them; the figures come from the `sent` events the workers publish:
sends a second between the first and the last `sent`, and the workers' (and the broker's) CPU over that time
divided by the mails.
Each figure is the median of MERCURY_BENCH_ROUNDS rounds on a fresh stack, printed as `name: value unit`.
"""
import logging
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer

from deploy.bench_stack import round_settings
from deploy.stack import LocalStack, StackConfig
from schemas import codec, registry, topics
from schemas.events import now_ms
from schemas.logs import configure_logging
from schemas.model import Mail
from schemas.vocabulary import EventType

log = logging.getLogger("mercury.bench.dispatcher")
WAIT_S = 300


def mail_records(count: int) -> list[tuple[str, bytes]]:
    """Mails as the gateway writes them (origin http: the gateway has recorded their acceptance)."""
    created = now_ms()
    records = []
    for _ in range(count):
        mail = Mail(id=uuid.uuid4().hex, sender="bench@example.com", recipients=("reader@example.com",),
                    subject="bench", content="Hello from the benchmark", created_at=created, origin="http")
        records.append((mail.id, codec.encode(registry.MAIL_REQUEST, mail.to_record())))
    return records


def write_requests(bootstrap: str, records: list[tuple[str, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True})
    for key, value in records:
        while True:
            try:
                producer.produce(topics.REQUESTS, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(60):
        raise RuntimeError("the benchmark's mails were not all written")


def sent_times(bootstrap: str, expected: int) -> list[int]:
    """When each `sent` event was made, read from the events topic until `expected` came."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    consumer.subscribe([topics.EVENTS])
    times: list[int] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while len(times) < expected and time.monotonic() < deadline:
            for message in consumer.consume(10_000, 0.5):
                if message.error() is None:
                    _, event = codec.decode(message.value())
                    if event["event"] == EventType.SENT:
                        times.append(event["created_at"])
    finally:
        consumer.close()
    return times


def one_round(workers: int, mails: int) -> tuple[float, float, float]:
    """(sends a second, worker CPU ms per mail, broker CPU ms per mail) for one fresh stack."""
    with tempfile.TemporaryDirectory(prefix="mercury-bench-dispatcher-") as state:
        config = StackConfig.on_free_ports(Path(state), dispatchers=workers)
        stack = LocalStack(config)
        try:
            broker = stack.start_broker()
            stack.start_sandbox(webhooks=False)
            dispatchers = [stack.start_dispatcher(n) for n in range(workers)]
            records = mail_records(mails)
            time.sleep(2)  # the group settles: every worker has its partitions before the first mail
            cpu_before, broker_before = sum(d.cpu_seconds() for d in dispatchers), broker.cpu_seconds()
            write_requests(config.bootstrap, records)
            times = sent_times(config.bootstrap, mails)
            cpu_s = sum(d.cpu_seconds() for d in dispatchers) - cpu_before
            broker_s = broker.cpu_seconds() - broker_before
        finally:
            stack.stop()
    if len(times) < mails:
        raise RuntimeError(f"only {len(times)} of {mails} mails were sent within {WAIT_S} s")
    span_s = max((max(times) - min(times)) / 1000, 0.001)
    return mails / span_s, cpu_s * 1000 / mails, broker_s * 1000 / mails


def main() -> None:
    configure_logging()
    mails = int(os.environ.get("MERCURY_BENCH_MAILS", "20000"))
    _, rounds = round_settings()
    for workers in (1, 2, 4):
        results = [one_round(workers, mails) for _ in range(rounds)]
        log.info("dispatcher_rounds", extra={"workers": workers, "rounds": results})
        print(f"dispatcher_sends_{workers}_workers: {statistics.median(r[0] for r in results):.0f} mails/s")
        print(f"dispatcher_cpu_per_mail_{workers}_workers: {statistics.median(r[1] for r in results):.2f} ms")
        print(f"broker_cpu_per_mail_{workers}_workers: {statistics.median(r[2] for r in results):.2f} ms")


if __name__ == "__main__":
    main()
