"""Session fixtures that start the real parts the tests run against, each on free ports."""
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_stack import STACK_ENV
from loop_thread import LoopThread, Run
from sandbox_client import Sandbox, sandbox_process

from deploy.broker import broker_process
from deploy.clickhouse import clickhouse_process
from deploy.processes import free_port
from deploy.stack import LocalStack, StackConfig
from providers.config import ADAPTERS
from tests.e2e.sessions import gateway

logging.basicConfig(level=logging.INFO)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def bootstrap(state_dir: Path) -> Iterator[str]:
    """A running Kafka-protocol broker; yields its bootstrap address."""
    port = free_port()
    proc = broker_process(port, state_dir / "logs").start()
    yield f"127.0.0.1:{port}"
    proc.stop()


@pytest.fixture(scope="session")
def clickhouse(state_dir: Path) -> Iterator[dict[str, str]]:
    """A running ClickHouse (the local server); yields the CLICKHOUSE_* variables that reach it."""
    tcp_port = free_port()
    http_port = free_port()
    while http_port == tcp_port:
        http_port = free_port()
    proc = clickhouse_process(tcp_port, http_port, state_dir / "clickhouse", state_dir / "logs").start()
    yield {"CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_PORT": str(tcp_port)}
    proc.stop()


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    ports = {name: free_port() for name in ADAPTERS}
    control_port = free_port()
    process = sandbox_process(tmp_path_factory.mktemp("sandbox"), ports, control_port).start()
    yield Sandbox(ports, control_port)
    process.stop()


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    """The shared sandbox with no faults and empty mailboxes; the adapters a test builds on it are closed after."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.close_services()


@pytest.fixture(scope="session")
def run() -> Iterator[Run]:
    """Await a coroutine from test code on one background loop, shared by the session: an adapter's pooled
    connections stay on the loop they were opened on, as in the dispatcher."""
    loop = LoopThread()
    yield loop.run
    loop.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local stack, started once for every test that needs it (end-to-end and security)."""
    config = StackConfig.on_free_ports(tmp_path_factory.mktemp("stack"), extra_env=STACK_ENV)
    running = LocalStack(config).start()
    gateway.headers["Authorization"] = f"Bearer {running.admin_key}"
    yield running
    running.stop()
