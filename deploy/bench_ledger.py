"""`make bench`, delivery state: a dispatcher's memory and its time from start to first send, on an empty
ledger and on one holding a week of history (2,000,000 mails by default, written straight to the topic with
their own timestamps, as the query bench fills ClickHouse).

Each run is a broker, the sandbox and one dispatcher; one mail waits on `mail.requests` before the worker
starts, and the clock runs from starting the worker to the sandbox's receipt of that mail. Figures are
printed as `name: value unit`.
"""
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path

import requests
from confluent_kafka import Producer

from deploy.stack import LocalStack, StackConfig
from schemas import codec, registry, topics
from schemas.logs import configure_logging

log = logging.getLogger("mercury.bench.ledger")
WEEK_MS = 7 * 86_400_000
SETTLE_S = 5.0


def fill_ledger(bootstrap: str, mails: int) -> None:
    """`mails` entries spread evenly over the past week, oldest first, as the dispatchers would have left them."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10_000,
                         "queue.buffering.max.messages": 1_000_000})
    now = int(time.time() * 1000)
    for n in range(mails):
        at = now - WEEK_MS + n * WEEK_MS // mails - 3_600_000
        mail_id = f"history-{n:08d}"
        value = codec.encode(registry.LEDGER_ENTRY, {"mail_id": mail_id, "state": "sent", "worker": "bench/old",
                                                     "provider": "mailgun", "message_id": f"<{n}@bench>",
                                                     "until": 0, "at": at})
        while True:
            try:
                producer.produce(topics.LEDGER, key=mail_id, value=value, timestamp=at)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("the ledger history was not all written")


def publish_mail(bootstrap: str, subject: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    mail_id = uuid.uuid4().hex
    producer.produce(topics.REQUESTS, key=mail_id, value=codec.encode(registry.MAIL_REQUEST, {
        "id": mail_id, "sender": "bench@example.com", "recipients": ["reader@example.com"], "subject": subject,
        "content": "first send", "created_at": int(time.time() * 1000), "origin": "http"}))
    producer.flush(10)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def first_send(history: int) -> tuple[float, float]:
    """Seconds from starting a worker to its first send, and its RSS (MB) once it settled, over `history` mails."""
    with tempfile.TemporaryDirectory(prefix="mercury-bench-ledger-") as state:
        stack = LocalStack(StackConfig.on_free_ports(Path(state), dispatchers=1))
        try:
            stack.start_broker()
            stack.start_sandbox()
            if history:
                started = time.monotonic()
                fill_ledger(stack.config.bootstrap, history)
                log.info("ledger_filled", extra={"mails": history, "seconds": round(time.monotonic() - started, 1)})
            subject = f"first-{uuid.uuid4().hex}"
            publish_mail(stack.config.bootstrap, subject)
            started = time.monotonic()
            worker = stack.start_dispatcher(0)
            messages = f"{stack.config.sandbox_url}/sandbox/mailgun/messages"
            others = f"{stack.config.sandbox_url}/sandbox/sendgrid/messages"
            deadline = started + 300
            while time.monotonic() < deadline:
                received = requests.get(messages, timeout=5).json() + requests.get(others, timeout=5).json()
                if any(m["subject"] == subject for m in received):
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("the worker sent nothing within 300 s")
            seconds = time.monotonic() - started
            time.sleep(SETTLE_S)
            return seconds, rss_mb(worker.proc.pid)
        finally:
            stack.stop()


def main() -> None:
    configure_logging()
    history = int(os.environ.get("MERCURY_BENCH_LEDGER_MAILS", "2000000"))
    empty_s, empty_mb = first_send(0)
    full_s, full_mb = first_send(history)
    print(f"worker_first_send_empty_history: {empty_s:.1f} s")
    print(f"worker_first_send_with_history: {full_s:.1f} s")
    print(f"worker_rss_empty_history: {empty_mb:.0f} MB")
    print(f"worker_rss_with_history: {full_mb:.0f} MB")
    print(f"ledger_history: {history} mails")


if __name__ == "__main__":
    main()
