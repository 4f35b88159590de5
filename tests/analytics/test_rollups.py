"""The questions read from the rollups answer exactly as the raw events do (tests/analytics/raw_questions.py),
on 18.16 and on current ClickHouse, whatever has been settled: nothing, part of the history, all of it, all
of it and then late rows (events into settled minutes, a mail's row after its events, a waiting mail's send),
and all of that settled again. Every row is written twice, as a re-delivery does."""
import threading
import time
from collections.abc import Callable

import pytest
import raw_questions
from clickhouse_driver import Client
from current_clickhouse import both_versions
from pipeline import Records, now_ms

from analytics import questions
from analytics.migrate import migrate
from analytics.rollups import settle
from analytics.rollups.spans import Spans
from analytics.rollups.touches import with_touches
from analytics.rows import event_row, mail_row
from analytics.store import MailStore
from analytics.writer import Writer

pytestmark = both_versions

T0 = 1_750_000_000_000
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
END = T0 + 3 * HOUR
TENANTS = ("acme", "globex", "default")
# (provider, outcome, cause, latency) per attempt; outcome "accepted" is a send; a failing last attempt leaves
# the mail waiting (or dead-lettered when permanent).
SCRIPTS = [
    [("alpha", "accepted", None, 120)],
    [("beta", "transient", "network", None), ("alpha", "accepted", None, 340)],
    [("gamma", "transient", "rate_limit", None), ("beta", "transient", "provider", None)],
    [("gamma", "permanent", None, None)],
    [("alpha", "provider_failure", None, None), ("beta", "ambiguous", None, None), ("gamma", "accepted", None, 75)],
    [("beta", "transient", None, None), ("gamma", "accepted", None, None)],
    [("alpha", "accepted", None, 120)],
]
# Every time; a window ending and starting inside minutes; none at all.
WINDOWS = [(None, None), (T0 + 17 * MINUTE + 1234, T0 + 131 * MINUTE + 567), (T0 + 2 * HOUR, T0 + HOUR)]


class History:
    """Mails of three tenants over three hours, and the odd records: mails from outside producers (an accepted
    event, no row), rows without an accepted event, a row without a time, a mail accepted forty days earlier
    and retried within the hours, events of a mail with no row, a request rejected at the gateway, and a mail
    whose row is held back (`row_later`: its events fall in later minutes than its acceptance)."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.mails: list[dict] = []
        self.events: list[dict] = []
        self.waiting: list[dict] = []
        for i in range(150):
            self._mail(i)
        old = records.mail(T0 - 40 * DAY, tenant="acme")
        self.mails.append(old)
        self.events += [records.event(old["id"], "accepted", old["created_at"]),
                        records.event(old["id"], "dispatched", T0 + 50 * MINUTE, "beta"),
                        records.event(old["id"], "sent", T0 + 50 * MINUTE + 90, "beta", "accepted", latency_ms=90)]
        unstamped = records.mail(0, tenant="globex")
        self.mails.append(unstamped)
        self.events += [records.event(unstamped["id"], "accepted", T0 + 70 * MINUTE),
                        records.event(unstamped["id"], "dispatched", T0 + 70 * MINUTE + 15, "alpha")]
        rowless = records.new_id("rowless")
        self.events += [records.event(rowless, "accepted", T0 + 30 * MINUTE),
                        records.event(rowless, "dispatched", T0 + 30 * MINUTE + 9, "alpha"),
                        records.event(rowless, "sent", T0 + 30 * MINUTE + 99, "alpha", "accepted", latency_ms=90),
                        records.event(records.new_id("refused"), "rejected", T0 + 31 * MINUTE, reason="bad")]
        self.row_later = records.mail(T0 + 20 * MINUTE + 10, tenant="globex")
        self.events += [records.event(self.row_later["id"], "accepted", T0 + 20 * MINUTE + 10),
                        records.event(self.row_later["id"], "dispatched", T0 + 22 * MINUTE, "beta"),
                        records.event(self.row_later["id"], "sent", T0 + 22 * MINUTE + 80, "beta", "accepted",
                                      latency_ms=80)]

    def _mail(self, i: int) -> None:
        tenant = TENANTS[i % 3 if i % 5 else 0]
        at = T0 + i * 70_000 + (i * 7919) % 1000
        mail = self.records.mail(at, tenant=tenant)
        if i % 11 != 4:
            self.mails.append(mail)
        if i % 13 != 6:
            self.events.append(self.records.event(mail["id"], "accepted", at))
        at += 5 + (i * 31) % 400
        script = SCRIPTS[i % len(SCRIPTS)]
        for provider, outcome, cause, latency in script:
            self.events.append(self.records.event(mail["id"], "dispatched", at, provider))
            at += 1 + (i * 13) % 50
            if outcome == "accepted":
                at += latency or 10
                detail = {} if latency is None else {"latency_ms": latency}
                self.events.append(self.records.event(mail["id"], "sent", at, provider, "accepted", **detail))
                return
            failure = {"status": 503} | ({"cause": cause} if cause else {})
            self.events.append(self.records.event(mail["id"], "attempt_failed", at, provider, outcome, **failure))
        if outcome == "permanent":
            self.events.append(self.records.event(mail["id"], "dead_lettered", at + 5))
        else:
            self.waiting.append(mail)


def write(client: Client, mails: list[dict], events: list[dict], offset: int = 0, late: bool = False) -> None:
    """Rows as the sink writes them, twice, as a re-delivery does; `late` ones (written long after they
    happened, as the sink writes a backlog) touch their minutes."""
    rows = {"mails": [mail_row(m, 0, offset + i) for i, m in enumerate(mails)],
            "events": [event_row(e, 0, offset + i) for i, e in enumerate(events)]}
    writer = Writer(client, threading.Event())
    for _ in range(2):
        assert writer.write(with_touches(rows, now_ms()) if late else rows)


def late_rows(history: History) -> tuple[list[dict], list[dict]]:
    """The held-back mails row; a waiting mail sent hours after its minute was settled; a send recorded late
    into a settled minute."""
    records, first, second = history.records, history.waiting[0], history.waiting[1]
    return [history.row_later], [
        records.event(first["id"], "dispatched", END + 2 * HOUR, "alpha"),
        records.event(first["id"], "sent", END + 2 * HOUR + 60, "alpha", "accepted", latency_ms=60),
        records.event(second["id"], "sent", T0 + 100 * MINUTE + 5, "gamma", "accepted", latency_ms=7),
    ]


def answers(client: Client, module: object, tenant: str | None) -> dict:
    """Every question over each window, as `module` answers it; timelines in whole minutes and not."""
    result = {}
    for since, until in WINDOWS:
        result[since, until] = {
            "queue": module.queue_time_stats(client, since, until, tenant=tenant),
            "delivery": module.delivery_time_stats(client, since, until, tenant=tenant),
            "providers": module.provider_stats(client, since, until, tenant=tenant),
            "failures": module.failure_causes(client, since, until, tenant=tenant),
            "unfinished": module.unfinished_mails(client, 600, now_ms=T0 + 80 * MINUTE, limit=5, since_ms=since,
                                                  tenant=tenant),
            "timeline": module.provider_timeline(client, 300, since, until, tenant=tenant),
            "timeline_90": module.provider_timeline(client, 90, since, until, tenant=tenant),
        }
    result["unfinished"] = module.unfinished_mails(client, 60, now_ms=END + DAY, tenant=tenant)
    return result


def list_reference(client: Client, tenant: str | None) -> tuple[list[str], int]:
    only = "" if tenant is None else " PREWHERE tenant = %(tenant)s"
    ids = [mail for (mail,) in client.execute(
        f"SELECT id FROM mails FINAL{only} ORDER BY created_at_ms DESC, id DESC LIMIT 7, 20", {"tenant": tenant})]
    (total,), = client.execute(f"SELECT count() FROM mails FINAL{only}", {"tenant": tenant})
    return ids, total


def assert_as_raw(client: Client) -> None:
    for tenant in (None, "acme", "globex"):
        assert answers(client, questions, tenant) == answers(client, raw_questions, tenant), tenant
        page, total = MailStore(client).list_mails(20, 7, tenant=tenant)
        assert ([mail["id"] for mail in page], total) == list_reference(client, tenant), tenant


@pytest.fixture
def history(client: Client, records: Records) -> History:
    history = History(records)
    write(client, history.mails, history.events)
    return history


def settled_rows(client: Client) -> int:
    return sum(client.execute(f"SELECT count() FROM {table}")[0][0]
               for table in ("provider_minutes", "mail_milestones", "mail_counts"))


STATES: dict[str, Callable[[Client, History], None]] = {
    "raw": lambda client, history: None,
    "half": lambda client, history: settle.settle(client, T0 + 90 * MINUTE),
    "settled": lambda client, history: settle.settle(client, END + DAY),
}


@pytest.mark.parametrize("state", list(STATES))
def test_answers_equal_the_raw_events(client: Client, history: History, state: str) -> None:
    STATES[state](client, history)
    assert (settled_rows(client) > 0) == (state != "raw")
    assert_as_raw(client)
    assert questions.provider_stats(client, tenant="nobody") == []
    assert questions.unfinished_mails(client, 0, now_ms=END + DAY, tenant="nobody") == []
    assert questions.delivery_time_stats(client, tenant="nobody")["count"] == 0
    assert MailStore(client).list_mails(5, 0, tenant="nobody") == ([], 0)


def test_late_rows_read_raw_until_settled_again(client: Client, history: History) -> None:
    settle.settle(client, END + DAY)
    mails, events = late_rows(history)
    write(client, mails, events, offset=10_000, late=True)
    assert_as_raw(client)
    settle_next_second(client)
    assert Spans.load(client, 0).resettled, "the touched minutes are settled again, under a second version"
    assert_as_raw(client)
    settle_next_second(client)  # the minutes of the waiting mails sent meanwhile, touched by the last round
    rows = settled_rows(client)
    settle_next_second(client)
    assert settled_rows(client) == rows, "nothing is left to settle"
    assert_as_raw(client)


def settle_next_second(client: Client) -> None:
    """A round in a second of its own: the settler's clock has whole seconds, and a minute touched within the
    round's second stays unclean."""
    time.sleep(1.1)
    settle.settle(client, END + DAY)


def test_a_tenant_claims_events_settled_before_its_mails_row(client: Client, history: History) -> None:
    settle.settle(client, END + DAY)
    minute = (T0 + 22 * MINUTE, T0 + 23 * MINUTE)  # the held-back mail's sending, settled without a tenant

    def sends(tenant: str) -> dict:
        stats = questions.provider_stats(client, *minute, tenant=tenant)
        return {p["provider"]: (p["attempts"], p["sent"]) for p in stats}

    before, others = sends("globex"), sends("acme")
    write(client, [history.row_later], [], offset=20_000, late=True)
    attempts, sent = before.get("beta", (0, 0))
    assert sends("globex") == {**before, "beta": (attempts + 1, sent + 1)}
    assert sends("acme") == others
    assert_as_raw(client)


def test_the_migration_settles_an_upgraded_history(client: Client, history: History) -> None:
    """A database that held rows before the rollups existed: the migration settles them from the raw tables."""
    database = client.connection.database
    for table in ("provider_minutes", "mail_milestones", "mail_counts", "settled_minutes"):
        client.execute(f"DROP TABLE {database}.{table}")
    versions = client.execute("SELECT version, name FROM schema_migrations FINAL WHERE version < 6")
    client.execute("TRUNCATE TABLE schema_migrations")
    client.execute("INSERT INTO schema_migrations (version, name) VALUES", versions)
    assert migrate(client) == ["0006_rollups"]
    assert settled_rows(client) > 0
    assert_as_raw(client)
