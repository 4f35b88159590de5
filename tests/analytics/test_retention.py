"""Retention on 18.16 and on current ClickHouse: days past the period go, the rest stays, and the TTL
follows the setting where the server has TTL."""
import datetime

import pytest
from clickhouse_driver import Client
from current_clickhouse import both_versions
from pipeline import Records

from analytics import retention
from analytics.migrate import migrate, server_state
from analytics.rollups.settle import settle
from analytics.rows import EVENT_COLUMNS, MAIL_COLUMNS, event_row, mail_row

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)


def at(days_ago: float) -> int:
    return int((NOW - datetime.timedelta(days=days_ago)).timestamp() * 1000)


def mail_ages(client: Client) -> list[int]:
    rows = client.execute("SELECT created_at_ms FROM mails FINAL ORDER BY created_at_ms")
    return [round((NOW.timestamp() * 1000 - ms) / 86_400_000) for (ms,) in rows]


@both_versions
def test_days_older_than_the_period_are_dropped(client: Client, records: Records) -> None:
    ages = [45, 31, 29, 3, 0]
    mails = [records.mail(created_at=at(days)) for days in ages]
    client.execute(f"INSERT INTO mails ({', '.join(MAIL_COLUMNS)}) VALUES",
                   [mail_row(m, 0, i) for i, m in enumerate(mails)])
    client.execute(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES",
                   [event_row(records.event(m["id"], "accepted", m["created_at"]), 0, i) for i, m in enumerate(mails)])

    dropped = retention.drop_expired_days(client, client.connection.database, 30, now=NOW)

    assert sorted(dropped) == sorted(f"{table}/{day}" for table in ("events", "mails") for day in (
        (NOW - datetime.timedelta(days=45)).strftime("%Y%m%d"), (NOW - datetime.timedelta(days=31)).strftime("%Y%m%d")))
    assert mail_ages(client) == [29, 3, 0]
    (events,), = client.execute("SELECT count() FROM events FINAL")
    assert events == 3
    assert retention.drop_expired_days(client, client.connection.database, 0, now=NOW) == []
    assert mail_ages(client) == [29, 3, 0]


@both_versions
def test_rollups_lose_the_same_days(client: Client, records: Records) -> None:
    mails = [records.mail(created_at=at(days)) for days in (45, 3)]
    client.execute(f"INSERT INTO mails ({', '.join(MAIL_COLUMNS)}) VALUES",
                   [mail_row(m, 0, i) for i, m in enumerate(mails)])
    client.execute(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES",
                   [event_row(records.event(m["id"], "dispatched", m["created_at"], "alpha"), 0, i)
                    for i, m in enumerate(mails)])
    settle(client, int(NOW.timestamp() * 1000))
    old_day = (NOW - datetime.timedelta(days=45)).strftime("%Y%m%d")

    dropped = retention.drop_expired_days(client, client.connection.database, 30, now=NOW)

    rollups = ("provider_minutes", "mail_milestones", "mail_counts", "settled_minutes")
    assert {f"{table}/{old_day}" for table in rollups} <= set(dropped)
    first_kept = int((NOW - datetime.timedelta(days=30)).strftime("%Y%m%d"))
    for table in rollups:
        (oldest, rows), = client.execute(f"SELECT min(toYYYYMMDD(minute)), count() FROM {table}")
        assert oldest >= first_kept and rows, table


@both_versions
def test_the_ttl_follows_the_setting(client: Client) -> None:
    database = client.connection.database
    server = server_state(client, database)
    migrate(client, retention_days=30)
    engines = dict(client.execute("SELECT name, engine_full FROM system.tables WHERE database = %(d)s",
                                  {"d": database}))
    if not server.ttl:
        assert not any(" TTL " in engine for engine in engines.values())
        return
    for table in retention.TABLES:
        assert "toIntervalDay(30)" in engines[table], engines[table]
    migrate(client, retention_days=0)
    engines = dict(client.execute("SELECT name, engine_full FROM system.tables WHERE database = %(d)s",
                                  {"d": database}))
    assert not any(" TTL " in engines[table] for table in retention.TABLES)
    assert retention.apply_ttl(client, server_state(client, database, 0)) == []


@pytest.mark.parametrize("raw", ["-1", "ten", "1.5"])
def test_a_bad_setting_is_refused_with_its_name(raw: str) -> None:
    with pytest.raises(ValueError, match="MERCURY_RETENTION_DAYS"):
        retention.retention_days({"MERCURY_RETENTION_DAYS": raw})


def test_the_sinks_check_runs_once_per_period_and_survives_a_failure(
    client: Client, records: Records, caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [0.0]
    old = records.mail(created_at=int((datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=40)).timestamp()
                                      * 1000))
    insert = f"INSERT INTO mails ({', '.join(MAIL_COLUMNS)}) VALUES"
    keeper = retention.DailyRetention(client, client.connection.database, 30, every_s=60, clock=lambda: clock[0])
    client.execute(insert, [mail_row(old, 0, 0)])
    keeper.tick()
    assert client.execute("SELECT count() FROM mails") == [(0,)]
    client.execute(insert, [mail_row(old, 0, 1)])
    clock[0] = 59
    keeper.tick()
    assert client.execute("SELECT count() FROM mails") == [(1,)], "checked again before the period passed"
    clock[0] = 60
    keeper.tick()
    assert client.execute("SELECT count() FROM mails") == [(0,)]

    unreachable = retention.DailyRetention(
        Client("127.0.0.1", port=1, connect_timeout=1), "nowhere", 30, clock=lambda: clock[0])
    unreachable.tick()
    assert "retention_failed" in caplog.text
