"""`make bench` (second half): how long every operator question takes on 10 million events.

Run twice: on a ClickHouse server of its own (the local 18.16) and on current ClickHouse in-process (chdb,
what production runs). Each is filled, inside the server, with a month of synthetic history: mails evenly
spread over 30 days ending now, each accepted, dispatched and sent, every fifth failing over to a second
provider first (5 events), one in a thousand stuck after a failed attempt, so the events number
MERCURY_BENCH_EVENTS (default 10,000,000). The mails belong to four tenants (half of them to the largest).
The history is then settled as the sink would have settled it by now (analytics.rollups: every minute older
than two), timed as `settle_time`. Each question then runs over windows of 1 hour, 1 day, 7 days and the
whole month (timelines in whole-minute buckets, about a hundred per window), for every tenant and again for
the largest tenant alone (`_tenant` figures); `query_mails_page` is the first page of `GET /mails/` over every
mail (about 2.9 million at the default size). Every figure is the median of several runs, printed as
`name_on_<version>: value unit`.
"""
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from clickhouse_driver import Client

from analytics import questions
from analytics.connection import connect
from analytics.migrate import migrate
from analytics.rollups import settle
from analytics.store import MailStore
from deploy.clickhouse import clickhouse_process
from deploy.embedded_clickhouse import CurrentClickHouse
from deploy.processes import free_port
from schemas.logs import configure_logging

log = logging.getLogger("mercury.bench.queries")

DAY_MS = 86_400_000
HISTORY_DAYS = 30
CHUNK_MAILS = 500_000
# Two in ten mails fail over (5 events), the rest go straight through (3 events).
EVENTS_PER_MAIL = 0.2 * 5 + 0.8 * 3
WINDOWS = (("1h", DAY_MS // 24), ("24h", DAY_MS), ("7d", 7 * DAY_MS), ("30d", HISTORY_DAYS * DAY_MS))
# Mail m belongs to TENANTS[m % 10]: half of the mails to the first tenant, the one measured alone.
TENANTS = ("acme",) * 5 + ("globex",) * 3 + ("initech", "default")

_MAILS = """
    INSERT INTO mails (id, sender, recipients, subject, content, origin, created_at_ms, kafka_partition, kafka_offset,
                       tenant)
    SELECT concat('bench-', toString(m)), 'bench@example.com', ['reader@example.com'], 'bench', 'hello', 'http',
           %(start)s + m * %(step)s, toUInt16(m %% 12), m, %(tenants)s[1 + m %% 10]
    FROM (SELECT number + %(first)s AS m FROM numbers(%(count)s))
"""

# Per mail: a failover mail is accepted, dispatched to its first provider, fails there (network, outage or
# rate limit in turn), is dispatched to the second and sent; a stuck one (one in a thousand) fails once and
# has no terminal event yet; the others are accepted, dispatched and sent.
_EVENTS = """
    INSERT INTO events (id, mail, event, created_at_ms, created_by, provider, outcome, cause, status, message_id,
                        latency_ms, blob, kafka_partition, kafka_offset)
    SELECT
        concat(mail, '/', toString(k)), mail, kinds[k], accepted + offsets[k], 'bench', providers[k], outcomes[k],
        causes[k], statuses[k], if(kinds[k] = 'sent', concat(mail, '@bench'), ''),
        if(kinds[k] = 'sent', toNullable(toUInt32(latency)), CAST(NULL AS Nullable(UInt32))), '',
        toUInt16(m %% 12), m * 5 + k
    FROM
    (
        SELECT
            m, concat('bench-', toString(m)) AS mail, %(start)s + m * %(step)s AS accepted,
            20 + (m * 7919) %% 900 AS latency, 5 + (m * 31) %% 400 AS queued,
            ['mailgun', 'sendgrid'][1 + m %% 2] AS first, ['sendgrid', 'mailgun'][1 + m %% 2] AS second,
            ['network', 'provider', 'rate_limit'][1 + intDiv(m, 5) %% 3] AS cause,
            multiIf(m %% 1000 = 999, 3, m %% 5 = 0, 2, 1) AS shape,
            [['accepted', 'dispatched', 'sent'], ['accepted', 'dispatched', 'attempt_failed', 'dispatched', 'sent'],
             ['accepted', 'dispatched', 'attempt_failed']][shape] AS kinds,
            [[toUInt64(0), queued, queued + latency],
             [toUInt64(0), queued, queued + 30, queued + 31, queued + 31 + latency],
             [toUInt64(0), queued, queued + 30]][shape] AS offsets,
            [['', first, first], ['', first, first, second, second], ['', first, first]][shape] AS providers,
            [['', '', 'accepted'], ['', '', 'transient', '', 'accepted'], ['', '', 'transient']][shape] AS outcomes,
            [['', '', ''], ['', '', cause, '', ''], ['', '', cause]][shape] AS causes,
            [['', '', '200'], ['', '', '503', '', '200'], ['', '', '503']][shape] AS statuses
        FROM (SELECT number + %(first)s AS m FROM numbers(%(count)s))
    )
    ARRAY JOIN arrayEnumerate(kinds) AS k
"""

# A breaker opening and closing once an hour; a delivered webhook for every tenth mail.
_HEALTH = """
    INSERT INTO provider_health (provider, state, opened_at_ms, probe_owner, probe_until_ms, throttled_until_ms,
                                 worker, reason, created_at_ms, kafka_partition, kafka_offset)
    SELECT ['mailgun', 'sendgrid'][1 + number %% 2], ['open', 'closed'][1 + intDiv(number, 2) %% 2], 0, '', 0, 0,
           'bench-worker', 'bench', %(start)s + number * 1800000, 0, number
    FROM numbers(%(count)s)
"""

_FEEDBACK = """
    INSERT INTO provider_feedback (id, provider, provider_event_id, message_id, event, bounce, recipient, reason, url,
                                   created_at_ms, received_at_ms, created_by, kafka_partition, kafka_offset)
    SELECT concat('fb-', toString(m)), ['mailgun', 'sendgrid'][1 + m %% 2], toString(m),
           concat('bench-', toString(m), '@bench'), 'delivered', '', 'reader@example.com', '', '',
           %(start)s + m * %(step)s + 2000, %(start)s + m * %(step)s + 2100, 'bench', 0, m
    FROM (SELECT number * 10 AS m FROM numbers(%(count)s))
"""


def fill(client: Client, events: int, now_ms: int) -> int:
    """Write the synthetic month; returns the number of events written."""
    mails = int(events / EVENTS_PER_MAIL)
    start = now_ms - HISTORY_DAYS * DAY_MS
    step = HISTORY_DAYS * DAY_MS // mails
    for first in range(0, mails, CHUNK_MAILS):
        count = min(CHUNK_MAILS, mails - first)
        window = {"start": start, "step": step, "first": first, "count": count}
        client.execute(_MAILS, {**window, "tenants": list(TENANTS)})
        client.execute(_EVENTS, window)
        log.info("filled", extra={"mails": first + count, "of": mails})
    client.execute(_HEALTH, {"start": start, "count": HISTORY_DAYS * 48})
    client.execute(_FEEDBACK, {"start": start, "step": step, "count": mails // 10})
    (written,), = client.execute("SELECT count() FROM events")
    return written


def median_ms(run: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def measure(client: Client, now_ms: int, mails: int, repeats: int, server: str) -> None:
    def report(name: str, run: Callable[[], object]) -> None:
        print(f"{name}_p50_on_{server}: {median_ms(run, repeats):.0f} ms", flush=True)

    tenant = TENANTS[0]
    for label, length in WINDOWS:
        since = now_ms - length
        bucket_s = max(60, length // 1000 // 100 // 60 * 60)
        report(f"query_breakers_{label}", lambda: questions.breakers(client, since, now_ms))
        report(f"query_feedback_{label}", lambda: questions.provider_feedback(client, since, now_ms))
        for scope, of in (("", None), ("_tenant", tenant)):
            for name, question in (
                ("providers", lambda: questions.provider_stats(client, since, now_ms, tenant=of)),
                ("provider_timeline", lambda: questions.provider_timeline(client, bucket_s, since, now_ms, tenant=of)),
                ("queue_time", lambda: questions.queue_time_stats(client, since, now_ms, tenant=of)),
                ("delivery_time", lambda: questions.delivery_time_stats(client, since, now_ms, tenant=of)),
                ("failure_causes", lambda: questions.failure_causes(client, since, now_ms, tenant=of)),
                ("unfinished", lambda: questions.unfinished_mails(client, 600, now_ms, 100, since, tenant=of)),
                ("rejections", lambda: questions.rejections(client, since, now_ms, tenant=of)),
            ):
                report(f"query_{name}_{label}{scope}", question)
    # Mails of the measured tenant: m % 10 < 5.
    traced = iter(range(10, mails, max(10, mails // (repeats * 4) // 10 * 10)))
    report("query_trace", lambda: questions.mail_trace(client, f"bench-{next(traced)}"))
    report("query_trace_tenant", lambda: questions.mail_trace(client, f"bench-{next(traced)}", tenant=tenant))
    report("query_mails_page", lambda: MailStore(client).list_mails(50, 0))
    report("query_mails_page_tenant", lambda: MailStore(client).list_mails(50, 0, tenant=tenant))


def bench(client: Client, events: int, repeats: int) -> None:
    """Migrate, fill and measure on one server."""
    migrate(client)
    (version,), = client.execute("SELECT version()")
    server = "ch" + "_".join(version.split(".")[:2])
    now_ms = time.time_ns() // 1_000_000
    started = time.perf_counter()
    written = fill(client, events, now_ms)
    (mails,), = client.execute("SELECT count() FROM mails")
    print(f"events_on_{server}: {written} rows")
    print(f"mails_on_{server}: {mails} rows")
    print(f"fill_time_on_{server}: {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    settle.settle(client, now_ms)
    print(f"settle_time_on_{server}: {time.perf_counter() - started:.1f} s", flush=True)
    measure(client, now_ms, int(events / EVENTS_PER_MAIL), repeats, server)


def main() -> None:
    configure_logging()
    events = int(os.environ.get("MERCURY_BENCH_EVENTS", "10000000"))
    repeats = int(os.environ.get("MERCURY_BENCH_QUERY_RUNS", "5"))
    with tempfile.TemporaryDirectory(prefix="mercury-bench-queries-") as state:
        port = free_port()
        server = clickhouse_process(port, free_port(), Path(state) / "data", Path(state) / "logs").start()
        client = connect({"CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_PORT": str(port),
                          "CLICKHOUSE_DATABASE": "bench"})
        try:
            bench(client, events, repeats)
        finally:
            client.disconnect()
            server.stop()
        embedded = CurrentClickHouse(str(Path(state) / "chdb"), database="bench")
        try:
            bench(embedded, events, repeats)
        finally:
            embedded.disconnect()


if __name__ == "__main__":
    main()
