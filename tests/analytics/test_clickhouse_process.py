"""The local ClickHouse process: starts in seconds, and a restart on the same data directory keeps the data."""
import time
from pathlib import Path

from analytics.connection import connect
from analytics.migrate import migrate
from deploy.clickhouse import clickhouse_process
from deploy.processes import free_port


def test_restart_on_the_same_data_dir_keeps_tables_and_rows(tmp_path: Path) -> None:
    env = {"CLICKHOUSE_DATABASE": "kept"}
    for run in range(2):
        tcp_port = free_port()
        started = time.monotonic()
        proc = clickhouse_process(tcp_port, free_port(), tmp_path / "data", tmp_path / "logs").start()
        try:
            assert time.monotonic() - started < 10
            client = connect({**env, "CLICKHOUSE_PORT": str(tcp_port)})
            if run == 0:
                migrate(client)
                client.execute("INSERT INTO mails (id, created_at_ms) VALUES", [("m1", 1_700_000_000_000)])
            assert len(client.execute("SELECT id, created_at FROM mails")) == 1
            assert migrate(client) == []
            client.disconnect()
        finally:
            proc.stop()
