"""Bring a ClickHouse database up to date with analytics.migrations; `python -m analytics.migrate`.

Safe to repeat, and to resume after a failure: statements are idempotent, each migration's statements are
computed from the database as it is, and the record table collapses duplicate records of one version.
Run one at a time (a table rebuild is copy, rename, drop) and with the sink stopped while a rebuild runs.
"""
import logging
import sys

from clickhouse_driver import Client

from analytics import migrations, retention
from analytics.connection import connect, identifier
from analytics.migrations import Server
from schemas.logs import configure_logging

log = logging.getLogger("mercury.analytics.migrate")

RECORD_TABLE = "schema_migrations"


def migrate(client: Client, admin: Client | None = None, retention_days: int = 0,
            up_to: int | None = None) -> list[str]:
    """Create the client's database if missing, apply pending migrations in order (up to version `up_to`
    when given), then make every table's retention say `retention_days` (0 keeps everything).

    `admin` is a client bound to `system` that creates the database; by default a sibling of `client`.
    Blocks until done; returns the names applied (empty when up to date); raises the driver's error when
    a statement fails, leaving earlier migrations recorded.
    """
    database = identifier(client.connection.database)
    _create_database(admin or _system_client(client), database)
    client.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {database}.{RECORD_TABLE}
        (version UInt32, name String, applied_at DateTime DEFAULT now())
        ENGINE = ReplacingMergeTree() ORDER BY version
        """
    )
    applied = {version for (version,) in client.execute(f"SELECT version FROM {database}.{RECORD_TABLE} FINAL")}
    done = []
    for migration in migrations.load():
        if migration.version in applied or (up_to is not None and migration.version > up_to):
            continue
        for statement in migration.forwards(server_state(client, database, retention_days)):
            client.execute(statement)
        client.execute(
            f"INSERT INTO {database}.{RECORD_TABLE} (version, name) VALUES",
            [(migration.version, migration.name)],
        )
        log.info("migration_applied", extra={"database": database, "migration": migration.name})
        done.append(migration.name)
    server = server_state(client, database, retention_days)
    retention.apply_ttl(client, server)
    retention.drop_expired_days(client, database, retention_days)
    return done


def server_state(client: Client, database: str, retention_days: int = 0) -> Server:
    """The server's version and the database's tables and columns, read now (each migration sees its
    predecessors' work)."""
    (version,), = client.execute("SELECT version()")
    major, minor = (int(part) for part in version.split(".")[:2])
    tables = frozenset(name for (name,) in client.execute(
        "SELECT name FROM system.tables WHERE database = %(database)s", {"database": database}))
    columns = frozenset((table, name) for table, name in client.execute(
        "SELECT table, name FROM system.columns WHERE database = %(database)s", {"database": database}))
    return Server(database, (major, minor), tables, retention_days, columns)


def _system_client(client: Client) -> Client:
    # A client bound to a missing database cannot even connect, so the database is created over a
    # sibling connection bound to `system`, which always exists.
    connection = client.connection
    host, port = connection.hosts[0]
    return type(client)(
        host, port=port, database="system", user=connection.user, password=connection.password,
        client_name="mercury-migrate", connect_timeout=connection.connect_timeout,
        send_receive_timeout=connection.send_receive_timeout,
    )


def _create_database(admin: Client, database: str) -> None:
    try:
        admin.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    finally:
        admin.disconnect()


def main() -> int:
    configure_logging()
    days = retention.retention_days()
    client = connect()
    try:
        applied = migrate(client, retention_days=days)
    finally:
        client.disconnect()
    log.info("schema_up_to_date", extra={"applied": ",".join(applied) or "none"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
