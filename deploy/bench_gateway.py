"""`python -m deploy.bench_gateway`: what one gateway process accepts with nothing else of the pipeline running.

The broker, ClickHouse and one gateway worker (`MERCURY_INGEST_WORKERS=1`, so at most one core) run; wrk posts
single mails for several rounds, then a few clients post batches of mails (deploy.bench_batch). The load
generator and the broker share the machine's other cores. Prints accepted mails per second and the gateway's
CPU ms per accepted mail for each route as `name: value unit`, medians over the rounds.
"""
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from deploy.bench import WRK_SCRIPT, run_wrk
from deploy.bench_batch import BATCH_MAILS, batch_body, batch_round
from deploy.bench_stack import round_settings
from deploy.stack import LocalStack, StackConfig
from ingest.api_root import API
from ingest.mails.batch import PATH as BATCH_PATH
from schemas.logs import configure_logging

log = logging.getLogger("mercury.bench_gateway")


def main() -> None:
    configure_logging()
    seconds, rounds = round_settings()
    connections = int(os.environ.get("MERCURY_BENCH_CONNECTIONS", "32"))
    clients = int(os.environ.get("MERCURY_BENCH_BATCH_CLIENTS", "4"))
    with tempfile.TemporaryDirectory(prefix="mercury-bench-gateway-") as state:
        config = StackConfig.on_free_ports(Path(state), extra_env={"MERCURY_INGEST_WORKERS": "1"})
        stack = LocalStack(config)
        try:
            stack.start_gateway()
            gateway = stack.processes["ingest"]
            script = config.state_dir / "post.lua"
            script.write_text(WRK_SCRIPT.replace("{key}", stack.admin_key))
            single_url = f"{config.api_url}{API}/mails/"
            run_wrk(single_url, 2, connections, 1, script)  # warm-up: connections, keys, the producer
            single: list[tuple[float, float]] = []
            for _ in range(rounds):
                cpu = gateway.cpu_seconds()
                total, non_2xx = run_wrk(single_url, seconds, connections, 1, script)
                accepted = total - non_2xx
                single.append((accepted / seconds, (gateway.cpu_seconds() - cpu) * 1000 / max(accepted, 1)))
            body, batch = batch_body(), []
            for _ in range(rounds):
                cpu, started = gateway.cpu_seconds(), time.monotonic()
                rate, _refused = batch_round(f"{config.api_url}{BATCH_PATH}", stack.admin_key, body,
                                             clients, seconds)
                accepted = rate * (time.monotonic() - started)
                batch.append((rate, (gateway.cpu_seconds() - cpu) * 1000 / max(accepted, 1)))
        finally:
            stack.stop()
    _report("gateway_single", single, "single-mail POSTs")
    _report("gateway_batch", batch, f"batches of {BATCH_MAILS}")


def _report(name: str, runs: list[tuple[float, float]], what: str) -> None:
    rates = [rate for rate, _ in runs]
    print(f"{name}_accepted_rate: {statistics.median(rates):.0f} mails/s ({what}, one gateway process)")
    print(f"{name}_accepted_rate_rounds: {' '.join(f'{r:.0f}' for r in rates)} mails/s")
    print(f"{name}_cpu_per_mail: {statistics.median(cpu for _, cpu in runs):.3f} ms")


if __name__ == "__main__":
    main()
