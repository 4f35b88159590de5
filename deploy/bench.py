"""`make bench`: drive the local stack with concurrent HTTP clients and print measured figures.

Each figure is printed as `name: value unit` on its own line so scripts can read it. Acceptance is
measured in several rounds (the median is the figure; the machines are shared and noisy) by wrk (C, so the load generator costs little of the shared CPU); delivery and latency are
read back from ClickHouse, as an operator would.
"""
import logging
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from analytics.connection import connect
from analytics.questions import delivery_time_stats
from deploy.stack import LocalStack, StackConfig

log = logging.getLogger("mercury.bench")

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.body = '{"sender": "bench@example.com", "recipients": "reader@example.com", "subject": "bench", "content": "Hello from the benchmark"}'
"""


def run_wrk(url: str, seconds: int, connections: int, threads: int, script: Path) -> tuple[int, int]:
    """Return (responses, non-2xx responses) from a wrk run."""
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    log.info("wrk output:\n%s", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total, int(bad.group(1)) if bad else 0


def count(client, sql: str, params: dict) -> int:
    return client.execute(sql, params)[0][0]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    seconds = int(os.environ.get("MERCURY_BENCH_SECONDS", "10"))
    rounds = int(os.environ.get("MERCURY_BENCH_ROUNDS", "3"))
    connections = int(os.environ.get("MERCURY_BENCH_CONNECTIONS", "64"))
    with tempfile.TemporaryDirectory(prefix="mercury-bench-") as state:
        config = StackConfig.on_free_ports(Path(state), extra_env={"MERCURY_SINK_BATCH_SECONDS": "0.5"})
        stack = LocalStack(config).start()
        try:
            client = connect({"CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_PORT": str(config.clickhouse_port)})
            script = Path(state) / "post.lua"
            script.write_text(WRK_SCRIPT.replace("{key}", stack.admin_key))
            started_ms = time.time_ns() // 1_000_000
            url = f"{config.api_url}/api/v1.0/mails/"
            runs = [run_wrk(url, seconds, connections, 2, script) for _ in range(rounds)]
            accepted = sum(total - non_2xx for total, non_2xx in runs)
            non_2xx = sum(bad for _, bad in runs)
            rates = [(total - bad) / seconds for total, bad in runs]
            since = {"since": started_ms}
            deadline = time.monotonic() + 300
            sent = 0
            while time.monotonic() < deadline:
                sent = count(client, "SELECT uniqExact(mail) FROM events WHERE event = 'sent' AND created_at_ms >= %(since)s", since)
                if sent >= accepted:
                    break
                time.sleep(1)
            first_accept, last_sent = client.execute(
                "SELECT (SELECT min(created_at_ms) FROM events WHERE event = 'accepted' AND created_at_ms >= %(since)s),"
                " (SELECT max(created_at_ms) FROM events WHERE event = 'sent' AND created_at_ms >= %(since)s)", since)[0]
            stats = delivery_time_stats(client, since_ms=started_ms)
        finally:
            stack.stop()
    print(f"accepted_mails: {accepted} mails")
    print(f"rejected_or_failed_requests: {non_2xx} requests")
    print(f"accepted_rate: {statistics.median(rates):.0f} mails/s")
    print(f"accepted_rate_rounds: {' '.join(f'{r:.0f}' for r in rates)} mails/s")
    print(f"delivered_mails: {sent} mails")
    print(f"delivered_rate: {sent / max((last_sent - first_accept) / 1000, 1e-3):.0f} mails/s")
    print(f"accept_to_sent_p50: {stats['p50_ms']:.0f} ms")
    print(f"accept_to_sent_p99: {stats['p99_ms']:.0f} ms")


if __name__ == "__main__":
    main()
