"""`make bench`: drive the local stack with concurrent HTTP clients and print measured figures.

Each figure is printed as `name: value unit` on its own line so scripts can read it. Acceptance is
measured in several rounds (the median is the figure; the machines are shared and noisy) by wrk (C, so the load
generator costs little of the shared CPU); delivery and latency are read back from ClickHouse, as an operator
would; the CPU each kind of process used over the run, divided by the mails delivered, is its cost per mail.
"""
import logging
import os
import re
import statistics
import subprocess
import time
from pathlib import Path

from analytics.questions import delivery_time_stats
from deploy.bench_stack import fresh_stack, round_settings
from deploy.stack import LocalStack
from ingest.api_root import API
from schemas.logs import configure_logging

log = logging.getLogger("mercury.bench")

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.body = '{"sender": "bench@example.com", "recipients": "reader@example.com", "subject": "bench",'
  .. ' "content": "Hello from the benchmark"}'
"""


def run_wrk(url: str, seconds: int, connections: int, threads: int, script: Path) -> tuple[int, int]:
    """Return (responses, non-2xx responses) from a wrk run."""
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    log.info("wrk_output", extra={"output": out})
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total, int(bad.group(1)) if bad else 0


def cpu_by_kind(stack: LocalStack) -> dict[str, float]:
    """CPU seconds used so far per kind of process (every dispatcher counted as one kind)."""
    used: dict[str, float] = {}
    for name, proc in stack.processes.items():
        kind = name.split("-")[0]
        used[kind] = used.get(kind, 0.0) + proc.cpu_seconds()
    return used


def count(client, sql: str, params: dict) -> int:
    return client.execute(sql, params)[0][0]


def main() -> None:
    configure_logging()
    seconds, rounds = round_settings()
    connections = int(os.environ.get("MERCURY_BENCH_CONNECTIONS", "64"))
    with fresh_stack("mercury-bench-") as (stack, client):
        config = stack.config
        script = config.state_dir / "post.lua"
        script.write_text(WRK_SCRIPT.replace("{key}", stack.admin_key))
        cpu_before = cpu_by_kind(stack)
        started_ms = time.time_ns() // 1_000_000
        url = f"{config.api_url}{API}/mails/"
        runs = [run_wrk(url, seconds, connections, 2, script) for _ in range(rounds)]
        accepted = sum(total - non_2xx for total, non_2xx in runs)
        non_2xx = sum(bad for _, bad in runs)
        rates = [(total - bad) / seconds for total, bad in runs]
        since = {"since": started_ms}
        deadline = time.monotonic() + 300
        sent = 0
        while time.monotonic() < deadline:
            sent = count(client, "SELECT uniqExact(mail) FROM events "
                                 "WHERE event = 'sent' AND created_at_ms >= %(since)s", since)
            if sent >= accepted:
                break
            time.sleep(1)
        cpu_used = {kind: used - cpu_before[kind] for kind, used in cpu_by_kind(stack).items()}
        first_accept, last_sent = client.execute(
            "SELECT (SELECT min(created_at_ms) FROM events WHERE event = 'accepted' AND created_at_ms >= %(since)s),"
            " (SELECT max(created_at_ms) FROM events WHERE event = 'sent' AND created_at_ms >= %(since)s)", since)[0]
        stats = delivery_time_stats(client, since_ms=started_ms)
    print(f"accepted_mails: {accepted} mails")
    print(f"rejected_or_failed_requests: {non_2xx} requests")
    print(f"accepted_rate: {statistics.median(rates):.0f} mails/s")
    print(f"accepted_rate_rounds: {' '.join(f'{r:.0f}' for r in rates)} mails/s")
    print(f"delivered_mails: {sent} mails")
    print(f"delivered_rate: {sent / max((last_sent - first_accept) / 1000, 1e-3):.0f} mails/s")
    print(f"accept_to_sent_p50: {stats['p50_ms']:.0f} ms")
    print(f"accept_to_sent_p99: {stats['p99_ms']:.0f} ms")
    for kind, used in sorted(cpu_used.items()):
        print(f"cpu_per_mail_{kind}: {used * 1000 / max(sent, 1):.3f} ms")


if __name__ == "__main__":
    main()
