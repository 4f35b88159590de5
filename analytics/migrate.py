"""Bring a ClickHouse database up to date with analytics.migrations; `python -m analytics.migrate`.

Safe to run concurrently and repeatedly: statements are idempotent and the record table collapses
duplicate records of one version.
"""
import logging
import sys

from clickhouse_driver import Client

from analytics import migrations
from analytics.connection import connect, identifier
from analytics.logfmt import configure_logging

log = logging.getLogger("mercury.analytics.migrate")

RECORD_TABLE = "schema_migrations"


def migrate(client: Client, admin: Client | None = None) -> list[str]:
    """Create the client's database if missing and apply pending migrations in order.

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
        if migration.version in applied:
            continue
        for statement in migration.forwards(database):
            client.execute(statement)
        client.execute(
            f"INSERT INTO {database}.{RECORD_TABLE} (version, name) VALUES",
            [(migration.version, migration.name)],
        )
        log.info("migration_applied", extra={"database": database, "migration": migration.name})
        done.append(migration.name)
    return done


def _system_client(client: Client) -> Client:
    # A client bound to a missing database cannot even connect, so the database is created over a
    # sibling connection bound to `system`, which always exists.
    connection = client.connection
    host, port = connection.hosts[0]
    return Client(
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
    client = connect()
    try:
        applied = migrate(client)
    finally:
        client.disconnect()
    log.info("schema_up_to_date", extra={"applied": ",".join(applied) or "none"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
