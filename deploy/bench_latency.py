"""`make bench` (latency) and `make soak`: how soon a mail leaves at loads people really send, not at saturation.

An open-loop client posts mails at fixed times whatever the answers (a closed loop would slow down with the
stack and hide its queueing): first a lone mail a second, then a steady MERCURY_BENCH_STEADY_RATE mails a
second (default 200) in rounds of MERCURY_BENCH_SECONDS. Accept→sent comes from ClickHouse, as an operator
reads it; the 202's own time from the client. `--soak MINUTES` keeps MERCURY_BENCH_SOAK_RATE mails a second
(default 20) that long in one-minute rounds and prints the first and the last round, so a stack that slows down
over time shows it. The soak's rate is low because the local broker cannot hold more for long: every fetch lists
every batch a partition ever received, and past some 25,000-100,000 batches a partition is no longer read at
all (deploy/broker.py); at 200 mails/s the events' partitions get there within a quarter of an hour.
"""
import argparse
import asyncio
import logging
import os
import statistics
import time

import aiohttp
from clickhouse_driver import Client

from analytics.questions import delivery_time_stats
from deploy.bench_stack import fresh_stack, round_settings
from deploy.stack import LocalStack
from ingest.api_root import API
from schemas.logs import configure_logging

log = logging.getLogger("mercury.bench.latency")
MAIL = {"sender": "bench@example.com", "recipients": "reader@example.com", "subject": "latency",
        "content": "Hello from the latency benchmark"}
SETTLE_S = 10
# Kept-alive connections to the gateway: a client with more at once would be refused at the door.
CONNECTIONS = 64


async def paced(url: str, key: str, rate: float, seconds: float) -> list[float]:
    """Post `rate` mails a second for `seconds`, each at its own time; the 202s' times in ms, counted from when
    each was due, so a post that waited for a free connection counts its wait."""
    answers: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}

    async def post(session: aiohttp.ClientSession, due: float) -> None:
        try:
            async with session.post(url, json=MAIL, headers=headers) as response:
                await response.read()
                status = response.status
        except aiohttp.ClientError as err:
            log.warning("mail_not_posted", extra={"error": repr(err)})
            return
        if status == 202:
            answers.append((time.perf_counter() - due) * 1000)
        else:
            log.warning("mail_refused", extra={"status": status})

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS)) as session:
        start = time.perf_counter()
        posts = []
        for n in range(int(rate * seconds)):
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            posts.append(asyncio.create_task(post(session, due)))
        await asyncio.gather(*posts)
    return answers


class Round:
    """One stretch of paced load and what it measured."""

    def __init__(self, stack: LocalStack, rate: float, seconds: float) -> None:
        self.since_ms = time.time_ns() // 1_000_000
        url = f"{stack.config.api_url}{API}/mails/"
        self.answers = asyncio.run(paced(url, stack.admin_key, rate, seconds))
        self.until_ms = time.time_ns() // 1_000_000

    def delivery(self, client: Client) -> dict:
        return delivery_time_stats(client, since_ms=self.since_ms, until_ms=self.until_ms)

    def answer_p99(self) -> float:
        return statistics.quantiles(self.answers, n=100)[98] if len(self.answers) > 1 else float("nan")


def wait_for_delivery(client: Client, rounds: list[Round]) -> None:
    """Until every accepted mail of the rounds is sent, or SETTLE_S passes with no progress."""
    expected = sum(len(r.answers) for r in rounds)
    seen, still_since = -1, time.monotonic()
    while time.monotonic() - still_since < SETTLE_S:
        sent = sum(r.delivery(client)["count"] for r in rounds)
        if sent >= expected:
            return
        if sent != seen:
            seen, still_since = sent, time.monotonic()
        time.sleep(1)
    log.warning("mails_unsent", extra={"expected": expected, "sent": seen})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak", type=float, default=0, help="minutes of steady load (0: the short latency bench)")
    args = parser.parse_args()
    configure_logging()
    seconds, rounds = round_settings()
    rate = float(os.environ.get("MERCURY_BENCH_STEADY_RATE", "200"))
    with fresh_stack("mercury-bench-latency-") as (stack, client):
        Round(stack, 1, 5)  # the first mails open connections and fill caches: not measured
        if args.soak:
            soak(client, stack, float(os.environ.get("MERCURY_BENCH_SOAK_RATE", "20")), int(args.soak))
            return
        lone = [Round(stack, 1, seconds) for _ in range(rounds)]
        steady = [Round(stack, rate, seconds) for _ in range(rounds)]
        wait_for_delivery(client, lone + steady)
        print(f"lone_accept_to_sent_p50: {statistics.median(r.delivery(client)['p50_ms'] for r in lone):.0f} ms")
        print(f"lone_accept_to_sent_p99: {statistics.median(r.delivery(client)['p99_ms'] for r in lone):.0f} ms")
        print(f"lone_response_p50: {statistics.median(statistics.median(r.answers) for r in lone):.1f} ms")
        for name in ("p50", "p99"):
            figure = statistics.median(r.delivery(client)[f"{name}_ms"] for r in steady)
            print(f"steady_{rate:.0f}_accept_to_sent_{name}: {figure:.0f} ms")
        print(f"steady_{rate:.0f}_response_p99: {statistics.median(r.answer_p99() for r in steady):.1f} ms")


def soak(client: Client, stack: LocalStack, rate: float, minutes: int) -> None:
    rounds = []
    for n in range(minutes):
        rounds.append(Round(stack, rate, 60))
        log.info("soak_round", extra={"round": n + 1, "of": minutes})
    wait_for_delivery(client, rounds)
    first, last = rounds[0].delivery(client), rounds[-1].delivery(client)
    print(f"soak_minutes: {minutes} min at {rate:.0f} mails/s")
    print(f"soak_first_round_accept_to_sent_p99: {first['p99_ms']:.0f} ms")
    print(f"soak_last_round_accept_to_sent_p99: {last['p99_ms']:.0f} ms")
    print(f"soak_last_vs_first_p99: {last['p99_ms'] / max(first['p99_ms'], 1):.2f} ratio")


if __name__ == "__main__":
    main()
