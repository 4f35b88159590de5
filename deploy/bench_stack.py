"""What the whole-stack benchmarks share: a fresh local stack on free ports with its ClickHouse client, and the
length and number of load rounds (MERCURY_BENCH_SECONDS, MERCURY_BENCH_ROUNDS)."""
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clickhouse_driver import Client

from analytics.connection import connect
from deploy.stack import LocalStack, StackConfig


def round_settings() -> tuple[int, int]:
    """(seconds per round, rounds): each figure is the median over the rounds."""
    return int(os.environ.get("MERCURY_BENCH_SECONDS", "10")), int(os.environ.get("MERCURY_BENCH_ROUNDS", "3"))


@contextmanager
def fresh_stack(prefix: str) -> Iterator[tuple[LocalStack, Client]]:
    """A started stack whose sink writes every half second (so figures read from ClickHouse settle soon), stopped
    and deleted on leaving."""
    with tempfile.TemporaryDirectory(prefix=prefix) as state:
        config = StackConfig.on_free_ports(Path(state), extra_env={"MERCURY_SINK_BATCH_SECONDS": "0.5"})
        stack = LocalStack(config).start()
        try:
            yield stack, connect({"CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_PORT": str(config.clickhouse_port)})
        finally:
            stack.stop()
