"""Where the parts of Mercury are, read from the environment in one place: every process, the local stack
(deploy/stack.py) and every `mercury` command ask here, so a port shifted for `make run` (because 8080 or 9092
is taken) applies everywhere at once.

    KAFKA_BOOTSTRAP          else 127.0.0.1:$MERCURY_KAFKA_PORT (9092)
    MERCURY_API_URL          else http://127.0.0.1:$MERCURY_INGEST_PORT (8080)
    MERCURY_SCHEMA_REGISTRY_URL  else the API URL + /schema-registry (the gateway serves it)
    MERCURY_SANDBOX_URL      else http://127.0.0.1:$MERCURY_SANDBOX_CONTROL_PORT (8029)
    CLICKHOUSE_HOST / CLICKHOUSE_PORT   127.0.0.1 / 9000 (native protocol); MERCURY_CLICKHOUSE_HTTP_PORT 8123

An address given whole (KAFKA_BOOTSTRAP, MERCURY_API_URL...) wins over a port, which only places the local stack.
"""
import os
from collections.abc import Mapping

LOCAL_HOST = "127.0.0.1"

KAFKA_BOOTSTRAP = "KAFKA_BOOTSTRAP"
KAFKA_PORT = "MERCURY_KAFKA_PORT"
API_URL = "MERCURY_API_URL"
API_KEY = "MERCURY_API_KEY"
INGEST_PORT = "MERCURY_INGEST_PORT"
SCHEMA_REGISTRY_URL = "MERCURY_SCHEMA_REGISTRY_URL"
SANDBOX_URL = "MERCURY_SANDBOX_URL"
CLICKHOUSE_HOST = "CLICKHOUSE_HOST"
CLICKHOUSE_PORT = "CLICKHOUSE_PORT"
CLICKHOUSE_HTTP_PORT = "MERCURY_CLICKHOUSE_HTTP_PORT"
SCHEMA_REGISTRY_PATH = "/schema-registry"

# Each port variable the local stack reads, with its default.
DEFAULT_PORTS: dict[str, int] = {
    KAFKA_PORT: 9092,
    CLICKHOUSE_PORT: 9000,
    CLICKHOUSE_HTTP_PORT: 8123,
    INGEST_PORT: 8080,
    "MERCURY_SANDBOX_MAILGUN_PORT": 8025,
    "MERCURY_SANDBOX_SENDGRID_PORT": 8026,
    "MERCURY_SANDBOX_POSTMARK_PORT": 8027,
    "MERCURY_SANDBOX_SMTP_PORT": 8028,
    "MERCURY_SANDBOX_CONTROL_PORT": 8029,
}

# Said after a failure, so whoever reads it knows which setting to change.
KAFKA_FROM = f"--bootstrap, else {KAFKA_BOOTSTRAP}, else 127.0.0.1:${KAFKA_PORT}"
API_FROM = f"--api, else {API_URL}, else http://127.0.0.1:${INGEST_PORT}"


def port(name: str, env: Mapping[str, str] = os.environ) -> int:
    """The port variable `name` (one of DEFAULT_PORTS), or its default; raises ValueError naming it."""
    value = env.get(name, "").strip()
    if not value:
        return DEFAULT_PORTS[name]
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise ValueError(f"{name} must be a port number (1-65535), got {value!r}")
    return number


def kafka_bootstrap(env: Mapping[str, str] = os.environ) -> str:
    """KAFKA_BOOTSTRAP, else the local broker at MERCURY_KAFKA_PORT (9092)."""
    return env.get(KAFKA_BOOTSTRAP, "").strip() or f"{LOCAL_HOST}:{port(KAFKA_PORT, env)}"


def api_url(env: Mapping[str, str] = os.environ) -> str:
    """The gateway's base URL (no trailing slash): MERCURY_API_URL, else the local one at MERCURY_INGEST_PORT."""
    return (env.get(API_URL, "").strip() or f"http://{LOCAL_HOST}:{port(INGEST_PORT, env)}").rstrip("/")


def schema_registry_url(env: Mapping[str, str] = os.environ) -> str:
    """The Schema Registry an outside producer's AvroSerializer uses: the gateway's unless one is named."""
    return (env.get(SCHEMA_REGISTRY_URL, "").strip() or f"{api_url(env)}{SCHEMA_REGISTRY_PATH}").rstrip("/")


def sandbox_url(env: Mapping[str, str] = os.environ) -> str:
    """The sandbox providers' control API (faults, mailboxes)."""
    return (env.get(SANDBOX_URL, "").strip()
            or f"http://{LOCAL_HOST}:{port('MERCURY_SANDBOX_CONTROL_PORT', env)}").rstrip("/")


def clickhouse_host(env: Mapping[str, str] = os.environ) -> str:
    return env.get(CLICKHOUSE_HOST, "").strip() or LOCAL_HOST


def clickhouse_port(env: Mapping[str, str] = os.environ) -> int:
    """ClickHouse's native protocol port."""
    return port(CLICKHOUSE_PORT, env)


def clickhouse_http_port(env: Mapping[str, str] = os.environ) -> int:
    return port(CLICKHOUSE_HTTP_PORT, env)
