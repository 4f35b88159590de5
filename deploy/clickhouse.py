"""The local ClickHouse: the distribution's clickhouse-server run as a plain child process.

It gets its own config next to its data, so it never touches the system service's files or ports, and
starting it again on the same data directory keeps every table. Settings are sized for a small
development machine (two cores); production runs a current ClickHouse with its own configuration.
Debian's 18.16 runs as root as it is (it neither refuses nor switches user) and is ready in about 0.1 s.
"""
import shutil
from pathlib import Path
from xml.sax.saxutils import escape

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError

from deploy.processes import ManagedProcess, port_open

# Debian installs the server in /usr/sbin, which is not on every user's PATH.
BINARY = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
HOST = "127.0.0.1"

# No interserver_http_port: replication is never used locally, so that port is not opened at all.
_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>{log_dir}/clickhouse-server.log</log>
        <errorlog>{log_dir}/clickhouse-server.err.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <listen_host>{host}</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <path>{data_dir}/</path>
    <tmp_path>{data_dir}/tmp/</tmp_path>
    <user_files_path>{data_dir}/user_files/</user_files_path>
    <format_schema_path>{data_dir}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <max_connections>256</max_connections>
    <max_concurrent_queries>32</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
</yandex>
"""

_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <max_memory_usage_for_all_queries>8000000000</max_memory_usage_for_all_queries>
            <max_threads>2</max_threads>
            <background_pool_size>4</background_pool_size>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <!-- An idle connection notices shutdown after this many seconds (default 10 holds up SIGTERM). -->
            <poll_interval>1</poll_interval>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"""


def write_config(tcp_port: int, http_port: int, data_dir: Path, log_dir: Path) -> Path:
    """Write config.xml and users.xml into data_dir (rewritten on every start, so ports may change)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "config.xml"
    config.write_text(_CONFIG.format(
        host=HOST, tcp_port=tcp_port, http_port=http_port,
        data_dir=escape(str(data_dir.resolve())), log_dir=escape(str(log_dir.resolve())),
    ))
    (data_dir / "users.xml").write_text(_USERS)
    return config


def answers(tcp_port: int) -> bool:
    """True once the server runs queries over its native port (an open port alone is not enough)."""
    if not port_open(HOST, tcp_port):
        return False
    client = Client(HOST, port=tcp_port, connect_timeout=1, send_receive_timeout=2, sync_request_timeout=1)
    try:
        client.execute("SELECT 1")
        return True
    except (ClickHouseError, OSError, EOFError):
        return False
    finally:
        client.disconnect()


def clickhouse_process(tcp_port: int, http_port: int, data_dir: Path, log_dir: Path) -> ManagedProcess:
    """The server on 127.0.0.1 only; `.start()` blocks until it answers `SELECT 1` on tcp_port."""
    config = write_config(tcp_port, http_port, data_dir, log_dir)
    return ManagedProcess(
        "clickhouse",
        [BINARY, f"--config-file={config}"],
        log_dir,
        ready=lambda: answers(tcp_port),
        cwd=data_dir,
        ready_timeout=30,
    )
