"""How every analytics component reaches ClickHouse (native protocol).

A clickhouse_driver Client is not thread-safe: keep one per thread (or per worker), never share one.
"""
import os
import re
from collections.abc import Mapping

from clickhouse_driver import Client

from schemas import endpoints

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Bound every wait: a dead server must fail a call, not hang it.
CONNECT_TIMEOUT_S = 5
SEND_RECEIVE_TIMEOUT_S = 60
SYNC_REQUEST_TIMEOUT_S = 5


def identifier(name: str) -> str:
    """Return name if it is a plain identifier; DDL cannot take names as parameters, so they are checked."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain identifier (letters, digits, underscore)")
    return name


def database_name(env: Mapping[str, str] = os.environ) -> str:
    """CLICKHOUSE_DATABASE (default mercury), checked."""
    return identifier(env.get("CLICKHOUSE_DATABASE", "mercury"))


def connect(env: Mapping[str, str] = os.environ) -> Client:
    """A client for CLICKHOUSE_HOST:CLICKHOUSE_PORT bound to CLICKHOUSE_DATABASE, as CLICKHOUSE_USER.

    Connects lazily, on the first query; a lost connection is reopened by the next query.
    """
    return Client(
        endpoints.clickhouse_host(env),
        port=endpoints.clickhouse_port(env),
        database=database_name(env),
        user=env.get("CLICKHOUSE_USER", "default"),
        password=env.get("CLICKHOUSE_PASSWORD", ""),
        client_name="mercury-analytics",
        connect_timeout=CONNECT_TIMEOUT_S,
        send_receive_timeout=SEND_RECEIVE_TIMEOUT_S,
        sync_request_timeout=SYNC_REQUEST_TIMEOUT_S,
    )
