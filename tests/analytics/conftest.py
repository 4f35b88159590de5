"""Fixtures for the analytics tests: a fresh database per test, the sink's topics, a producer, and sinks
run as real processes."""
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from current_clickhouse import CURRENT, REAL, CurrentClickHouse
from pipeline import PARTITIONS, SINK_TOPICS, Publisher, Records, SinkRunner

from analytics.connection import connect
from analytics.migrate import migrate


@pytest.fixture
def records() -> Records:
    return Records()


@pytest.fixture
def ch_env(clickhouse: dict[str, str]) -> dict[str, str]:
    """The CLICKHOUSE_* variables for a database of this test's own."""
    return {**clickhouse, "CLICKHOUSE_DATABASE": f"test_{uuid.uuid4().hex[:12]}"}


@pytest.fixture
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client | CurrentClickHouse]:
    """A client on this test's database, migrated: on the 18.16 server, or, in modules marked
    current_clickhouse.both_versions, once on each version."""
    yield from _migrated(request, tmp_path, up_to=None)


@pytest.fixture
def first_schema(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client | CurrentClickHouse]:
    """Like `client`, with only the first migration applied: a database as the first release left it."""
    yield from _migrated(request, tmp_path, up_to=1)


def _migrated(request: pytest.FixtureRequest, tmp_path: Path,
              up_to: int | None) -> Iterator[Client | CurrentClickHouse]:
    admin = None
    if getattr(request, "param", REAL) == CURRENT:
        client = CurrentClickHouse(str(tmp_path / "chdb"), database="mercury")
        # The database is created over another session on the same chdb directory, bound to `system`.
        admin = CurrentClickHouse(str(tmp_path / "chdb"), database="system")
    else:
        client = connect(request.getfixturevalue("ch_env"))
    try:
        migrate(client, admin, up_to=up_to)
        yield client
    finally:
        # chdb holds one data directory per process at a time: the next test's opens once this closes.
        client.disconnect()


@pytest.fixture(scope="session")
def kafka(bootstrap: str) -> str:
    """The broker with the sink's topics created (several partitions); returns the bootstrap address."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in SINK_TOPICS])
    for future in futures.values():
        try:
            future.result(timeout=10)
        except KafkaException as err:
            if err.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    return bootstrap


@pytest.fixture
def publisher(kafka: str) -> Publisher:
    return Publisher(kafka)


@pytest.fixture
def sinks(kafka: str, tmp_path: Path) -> Iterator[SinkRunner]:
    runner = SinkRunner(kafka, tmp_path / "logs")
    yield runner
    runner.stop_all()
