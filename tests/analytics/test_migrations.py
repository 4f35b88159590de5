"""Migrations against the real server: the database is created, each migration applies once, in order."""
from clickhouse_driver import Client

from analytics import migrations
from analytics.connection import connect
from analytics.migrate import migrate, server_state
from analytics.rows import COLUMNS


def columns(client: Client, table: str) -> dict[str, str]:
    return dict(client.execute(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = %(table)s",
        {"table": table},
    ))


def test_migrate_creates_the_database_and_applies_everything_once(ch_env: dict[str, str]) -> None:
    client = connect(ch_env)
    try:
        names = [migration.name for migration in migrations.load()]
        assert migrate(client) == names
        assert migrate(client) == []
        assert client.execute("SELECT version, name FROM schema_migrations FINAL ORDER BY version") == [
            (migration.version, migration.name) for migration in migrations.load()
        ]
        for table, written in COLUMNS.items():
            assert set(columns(client, table)) == {*written, "created_at"}, table
        assert {"recipients": "Array(String)", "created_at": "DateTime", "created_at_ms": "UInt64",
                "tenant": "String"}.items() <= columns(client, "mails").items()
        (default,), = client.execute("SELECT default_expression FROM system.columns WHERE database ="
                                     " currentDatabase() AND table = 'mails' AND name = 'tenant'")
        assert default == "'default'"
        assert {"created_at": "DateTime", "provider": "String", "latency_ms": "Nullable(UInt32)"}.items() \
            <= columns(client, "events").items()
    finally:
        client.disconnect()


def test_every_statement_is_idempotent(client: Client) -> None:
    database = client.connection.database
    for migration in migrations.load():
        for statement in migration.forwards(server_state(client, database)):
            client.execute(statement)


def test_migrations_are_numbered_from_one_and_say_why() -> None:
    loaded = migrations.load()
    assert [migration.version for migration in loaded] == list(range(1, len(loaded) + 1))
    assert all(len(migration.why) > 40 for migration in loaded)
