"""Start a child process, wait until it is ready, stop it without leaving orphans.

Each child runs in its own process group so that stopping it also stops anything it spawned.
"""
import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests

log = logging.getLogger("mercury.deploy")
# How far below the ephemeral range listening ports are drawn from.
LISTEN_PORT_SPAN = 12_000
_handed_out: set[int] = set()


class StartupError(RuntimeError):
    """A part of the stack did not come up; the message says which and where its log is."""


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """Readiness probe: the URL answers 200 within a second."""
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def free_port() -> int:
    """A port nothing listens on, from below the kernel's range for outgoing connections: a port from that
    range can be taken by any client's connection between choosing it and binding it (seen as "Address
    already in use" when several stacks start on one machine). Never the same port twice in one process."""
    low, _ = _ephemeral_range()
    for _ in range(1000):
        port = random.randrange(max(1024, low - LISTEN_PORT_SPAN), low)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral port range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


class ManagedProcess:
    """One child process with its log file, readiness probe and graceful stop."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_dir: Path,
        ready: Callable[[], bool],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ready_timeout: float = 60.0,
        niceness: int = 0,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self.ready = ready
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.ready_timeout = ready_timeout
        self.niceness = niceness
        self.proc: subprocess.Popen | None = None
        self.log_start = 0

    def start(self) -> "ManagedProcess":
        """Start and block until ready; raises StartupError if it exits or times out first."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path, "ab")
        self.log_start = log_file.tell()
        self.proc = subprocess.Popen(
            self.argv, stdout=log_file, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
            start_new_session=True, preexec_fn=(lambda: os.nice(self.niceness)) if self.niceness else None,
        )
        log_file.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartupError(f"{self.name} exited with {self.proc.returncode}; "
                                   f"see {self.log_path}:\n{self.tail()}")
            if self.ready():
                log.info("started", extra={"part": self.name, "pid": self.proc.pid})
                return self
            time.sleep(0.1)
        self.stop()
        raise StartupError(f"{self.name} not ready after {self.ready_timeout:.0f}s; "
                           f"see {self.log_path}:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """User and system CPU used so far by every live process of this part's group (a gateway's workers too),
        all threads counted: what a figure of cost per mail is built from."""
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # the process ended while the others were read
                continue
            if int(fields[2]) == self.proc.pid:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the whole group, then SIGKILL whatever is left after the timeout."""
        if self.proc is None:
            return
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("sigterm_ignored_killing", extra={"part": self.name, "waited_s": round(timeout)})
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def output_since_start(self) -> str:
        """What the process logged since its latest start: the log is appended to across starts, so an
        earlier run's lines must not pass for this run's."""
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(self.log_start)
                return log_file.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
