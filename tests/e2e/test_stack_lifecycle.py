"""`make run`'s promises: it prints how to send a mail, SIGTERM leaves no process behind, and a second run
on the same state folder still has the first run's history."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from deploy.processes import free_port
from tests.e2e.conftest import post_mail, wait_for_event
from tests.e2e.sessions import key_session

ROOT = Path(__file__).resolve().parents[2]
PORT_VARIABLES = ("MERCURY_KAFKA_PORT", "CLICKHOUSE_PORT", "MERCURY_CLICKHOUSE_HTTP_PORT", "MERCURY_INGEST_PORT",
                  "MERCURY_SANDBOX_MAILGUN_PORT", "MERCURY_SANDBOX_SENDGRID_PORT", "MERCURY_SANDBOX_CONTROL_PORT")


class RunningStack:
    """`python -m deploy.stack` in the foreground, as `make run` starts it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "deploy.stack"], cwd=ROOT, env=env,
                                     stdout=open(log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while "Press Ctrl-C to stop." not in self.output():
            assert self.proc.poll() is None, f"the stack exited early:\n{self.output()}"
            assert time.monotonic() < deadline, f"the stack did not come up:\n{self.output()}"
            time.sleep(0.5)

    def output(self) -> str:
        return self.log.read_text()

    def session(self) -> requests.Session:
        """Requests with the admin key this run printed."""
        return key_session(re.search(r"export MERCURY_API_KEY=(mk_\S+)", self.output())[1])

    def children(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"started \S+ pid=(\d+)", self.output())]

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def alive_in_groups(groups: list[int]) -> list[int]:
    """Processes still running in any of these process groups (children and whatever they spawned).

    A zombie has exited already; it only waits for the machine's init to collect its status."""
    alive = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgid = fields[0], int(fields[2])
        if pgid in groups and state != "Z":
            alive.append(int(entry.parent.name))
    return alive


def test_the_stack_stops_cleanly_and_keeps_its_history(tmp_path):
    env = {**os.environ, "MERCURY_STATE_DIR": str(tmp_path / "state"), "MERCURY_DISPATCHERS": "1"}
    env.update({name: str(free_port()) for name in PORT_VARIABLES})
    api = f"http://127.0.0.1:{env['MERCURY_INGEST_PORT']}/api/v1.0"

    first = RunningStack(env, tmp_path / "first.log")
    assert f"curl -si -X POST {api}/mails/" in first.output()
    mail_id = post_mail(api, "kept across runs", session=first.session())
    wait_for_event(api, mail_id, "sent", session=first.session())
    groups = first.children()
    assert len(groups) == 6  # broker, clickhouse, sandbox, ingest, one dispatcher, sink
    assert first.terminate() == 0
    assert alive_in_groups(groups) == []

    second = RunningStack(env, tmp_path / "second.log")
    try:
        mail = second.session().get(f"{api}/mails/{mail_id}", timeout=10).json()
        assert mail["subject"] == "kept across runs" and mail["status"] in ("sent", "delivered")
    finally:
        second.terminate()
