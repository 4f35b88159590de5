"""`python -m deploy.bench_batch`: how many mails a second the gateway accepts through `POST /mails/batch`.

A few clients post batches of BATCH_MAILS mails back to back against the whole local stack for several rounds
(`MERCURY_BENCH_SECONDS`, `MERCURY_BENCH_ROUNDS`, `MERCURY_BENCH_BATCH_CLIENTS`); a mail counts once its result
says 202. Each client sends the same pre-encoded body, so the load generator costs little of the shared CPU
beyond reading the answers. For comparison, one wrk round of single-mail POSTs on the same stack follows.
Figures are printed as `name: value unit`, the median over rounds first.
"""
import logging
import os
import statistics
import threading
import time

import orjson
import requests

from deploy.bench import WRK_SCRIPT, run_wrk
from deploy.bench_stack import fresh_stack, round_settings
from ingest.api_root import API
from ingest.mails.batch import PATH as BATCH_PATH
from schemas.logs import configure_logging

log = logging.getLogger("mercury.bench_batch")
BATCH_MAILS = 1000


def batch_body() -> bytes:
    """A batch of ordinary mails, each with its own recipient, tags and metadata."""
    return orjson.dumps({"mails": [
        {"sender": "bench@example.com", "recipients": f"reader{i}@example.com", "subject": f"bench {i}",
         "content": "Hello from the batch benchmark", "tags": ["bench"], "metadata": {"n": str(i)}}
        for i in range(BATCH_MAILS)]})


def post_batches(url: str, key: str, body: bytes, seconds: float) -> tuple[int, int]:
    """Post the batch back to back for `seconds`; (mails accepted, mails not)."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    accepted = refused = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = session.post(url, data=body, timeout=60)
        if answer.status_code not in (200, 202, 503):
            raise RuntimeError(f"the batch was refused whole: {answer.status_code} {answer.text[:300]}")
        codes = [item["code"] for item in orjson.loads(answer.content)["mails"]]
        ok = codes.count(202)
        accepted, refused = accepted + ok, refused + len(codes) - ok
    return accepted, refused


def batch_round(url: str, key: str, body: bytes, clients: int, seconds: float) -> tuple[float, int]:
    """One round of `clients` concurrent posters: (accepted mails per second, mails not accepted)."""
    results: list[tuple[int, int]] = []

    def client() -> None:
        results.append(post_batches(url, key, body, seconds))

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if len(results) != clients:
        raise RuntimeError("a client failed; its error is above")
    return sum(a for a, _ in results) / elapsed, sum(r for _, r in results)


def main() -> None:
    configure_logging()
    seconds, rounds = round_settings()
    clients = int(os.environ.get("MERCURY_BENCH_BATCH_CLIENTS", "4"))
    connections = int(os.environ.get("MERCURY_BENCH_CONNECTIONS", "64"))
    body = batch_body()
    with fresh_stack("mercury-bench-batch-") as (stack, _client):
        api_url = stack.config.api_url
        runs = [batch_round(f"{api_url}{BATCH_PATH}", stack.admin_key, body, clients, seconds)
                for _ in range(rounds)]
        script = stack.config.state_dir / "post.lua"
        script.write_text(WRK_SCRIPT.replace("{key}", stack.admin_key))
        total, non_2xx = run_wrk(f"{api_url}{API}/mails/", seconds, connections, 2, script)
    rates = [rate for rate, _ in runs]
    print(f"batch_accepted_rate: {statistics.median(rates):.0f} mails/s")
    print(f"batch_accepted_rate_rounds: {' '.join(f'{r:.0f}' for r in rates)} mails/s")
    print(f"batch_not_accepted: {sum(refused for _, refused in runs)} mails")
    print(f"single_accepted_rate: {(total - non_2xx) / seconds:.0f} mails/s")


if __name__ == "__main__":
    main()
