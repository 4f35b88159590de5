"""The rebuild to daily partitions and newer types, on 18.16 and on current ClickHouse: rows survive it,
an interrupted run finishes on the next, and each server gets the features it has; mails stored before
tenants existed become the default tenant's."""
import pytest
from clickhouse_driver import Client
from current_clickhouse import CURRENT, REAL
from pipeline import Records

from analytics import migrations
from analytics.migrate import migrate, server_state
from analytics.rows import EVENT_COLUMNS, MAIL_COLUMNS, event_row, mail_row

pytestmark = pytest.mark.parametrize("first_schema", [REAL, CURRENT], indirect=True)

DAY_MS = 86_400_000
T0 = 1_750_000_000_000
# The mails columns of the first release.
FIRST_MAIL_COLUMNS = tuple(column for column in MAIL_COLUMNS if column != "tenant")


def write_history(client: Client, records: Records, mails: int) -> None:
    mail_rows, event_rows = [], []
    for i in range(mails):
        mail = records.mail(created_at=T0 + i * DAY_MS // 4)
        row = dict(zip(MAIL_COLUMNS, mail_row(mail, 0, i)))
        mail_rows.append(tuple(row[column] for column in FIRST_MAIL_COLUMNS))
        event_rows.append(event_row(records.event(mail["id"], "accepted", created_at=mail["created_at"]), 0, i))
    client.execute(f"INSERT INTO mails ({', '.join(FIRST_MAIL_COLUMNS)}) VALUES", mail_rows)
    client.execute(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES", event_rows)


def table_info(client: Client, table: str) -> tuple[str, dict[str, str]]:
    (partition_key,), = client.execute(
        "SELECT partition_key FROM system.tables WHERE database = currentDatabase() AND name = %(t)s", {"t": table})
    types = dict(client.execute(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = %(t)s", {"t": table}))
    return partition_key, types


def counts(client: Client) -> tuple[int, int, int]:
    (mails,), = client.execute("SELECT count() FROM mails FINAL")
    (events,), = client.execute("SELECT count() FROM events FINAL")
    (accepted_ms,), = client.execute("SELECT sum(created_at_ms) FROM mails FINAL")
    return mails, events, accepted_ms


def test_rows_written_before_the_rebuild_survive_it(first_schema: Client, records: Records) -> None:
    client = first_schema
    write_history(client, records, 12)
    before = counts(client)
    assert before[:2] == (12, 12)

    assert migrate(client) == [m.name for m in migrations.load()[1:]]

    assert counts(client) == before
    for table in ("mails", "events"):
        partition_key, _ = table_info(client, table)
        assert partition_key == "toYYYYMMDD(created_at)"
    (days,), = client.execute("SELECT uniqExact(partition) FROM system.parts"
                              " WHERE database = currentDatabase() AND table = 'events' AND active")
    assert days == 4  # 12 mails, 4 a day
    (tables,), = client.execute("SELECT groupArray(name) FROM system.tables WHERE database = currentDatabase()")
    assert not [t for t in tables if t.endswith(("_next", "_previous"))]


def test_an_interrupted_rebuild_finishes_on_the_next_run(first_schema: Client, records: Records) -> None:
    client = first_schema
    write_history(client, records, 8)
    before = counts(client)
    database = client.connection.database
    rebuild = migrations.load()[1].forwards(server_state(client, database))
    # Interrupted after the events copy was made and the old table renamed away, before the new one took
    # its name (the rename is two steps on 18.16): the re-run must finish the rename, not lose the rows.
    events_start = next(i for i, s in enumerate(rebuild) if ".events_previous" in s)
    for statement in rebuild[:events_start]:
        client.execute(statement)
    for statement in rebuild[events_start + 1:events_start + 3]:
        client.execute(statement)
    client.execute(f"RENAME TABLE {database}.events TO {database}.events_previous")

    migrate(client)

    assert counts(client) == before
    assert table_info(client, "events")[0] == "toYYYYMMDD(created_at)"


def test_each_server_gets_the_types_it_has(first_schema: Client) -> None:
    client = first_schema
    migrate(client)
    server = server_state(client, client.connection.database)
    _, types = table_info(client, "events")
    if server.version >= (20, 5):
        assert types["event"] == types["provider"] == "LowCardinality(String)"
        assert types["created_at"] == "DateTime64(3)"
    else:
        assert server.version == (18, 16)
        assert types["event"] == types["provider"] == "String"
        assert types["created_at"] == "DateTime"
    assert types["created_at_ms"] == "UInt64"


def test_mails_stored_before_tenants_are_the_default_tenants(first_schema: Client, records: Records) -> None:
    client = first_schema
    write_history(client, records, 4)
    migrate(client)
    tenant = records.mail(T0, tenant="acme")
    client.execute(f"INSERT INTO mails ({', '.join(MAIL_COLUMNS)}) VALUES", [mail_row(tenant, 0, 9)])

    assert client.execute("SELECT tenant, count() FROM mails FINAL GROUP BY tenant ORDER BY tenant") == [
        ("acme", 1), ("default", 4)]
    server = server_state(client, client.connection.database)
    expected = "LowCardinality(String)" if server.version >= (19, 9) else "String"
    assert table_info(client, "mails")[1]["tenant"] == expected
    assert migrations.load()[4].forwards(server) == [], "the column is added once"
