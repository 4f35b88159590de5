"""The two ClickHouse versions the analytics tests run on: the local 18.16 server and current ClickHouse
in-process (deploy.embedded_clickhouse)."""
import pytest

from deploy.embedded_clickhouse import CurrentClickHouse

REAL = "clickhouse-18.16"
CURRENT = "clickhouse-current"

# `pytestmark = both_versions`: every test of the module gets its `client` once per ClickHouse version.
both_versions = pytest.mark.parametrize("client", [REAL, CURRENT], indirect=True)

__all__ = ["CURRENT", "REAL", "CurrentClickHouse", "both_versions"]
