"""Session fixtures that start the real parts the tests run against, each on free ports."""
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.broker import broker_process
from deploy.processes import free_port

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
