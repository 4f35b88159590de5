"""The security tests attack the same whole local stack as the end-to-end tests, through the same fixtures."""
from tests.e2e.conftest import api, clickhouse_client, sandbox  # noqa: F401 (fixtures, shared by name)
