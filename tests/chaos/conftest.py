"""The chaos suite's stack: the real local stack, one per test file, with settings suited to the cases; a
harness per case (harness.py); and the result lines of every case printed at the end of the run."""
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.stack import LocalStack, StackConfig
from tests.chaos.harness import Chaos

DISPATCHERS = 2
BREAKER_RECOVERY_S = 30.0
# A short ladder so a mail failed everywhere finishes within the settle timeout. The breaker stays open
# longer than the longest provider outage a case injects (20 s), so "no more sends to a provider that is
# down" is the failover itself, not half-open probes.
CHAOS_ENV = {
    "MERCURY_RETRY_DELAYS": "1,2,4,8,16",
    "MERCURY_BREAKER_FAILURES": "3",
    "MERCURY_BREAKER_RECOVERY_S": str(BREAKER_RECOVERY_S),
    "MERCURY_PROVIDER_READ_TIMEOUT": "2",
    "MERCURY_SINK_BATCH_SECONDS": "0.2",
}
RESULTS = pytest.StashKey[Path]()


def revive(stack: LocalStack) -> None:
    """Start again whatever a case left stopped, so the next case on the same stack starts whole."""
    for name in stack.dead():
        stack.restart(name)


def cool_down(chaos: Chaos) -> None:
    """After a fault, wait until open breakers have let a probe through again, so the next case starts
    with every provider in use."""
    if chaos.faults_cleared_at is not None:
        time.sleep(max(0.0, chaos.faults_cleared_at + BREAKER_RECOVERY_S - time.monotonic()))


@pytest.fixture(scope="session")
def chaos_results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.getbasetemp() / "chaos-results.txt"
    request.config.stash[RESULTS] = path
    return path


@pytest.fixture(scope="module")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local stack on free ports, one per test file: a case that breaks it harms no other file."""
    config = StackConfig.on_free_ports(tmp_path_factory.mktemp("chaos"), dispatchers=DISPATCHERS,
                                       extra_env=CHAOS_ENV)
    stack = LocalStack(config).start()
    yield stack
    stack.stop()


@pytest.fixture
def chaos(chaos_stack: LocalStack, chaos_results: Path) -> Iterator[Chaos]:
    revive(chaos_stack)
    harness = Chaos(chaos_stack, chaos_results)
    harness.clear_faults()
    yield harness
    harness.clear_faults()
    revive(chaos_stack)
    cool_down(harness)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    path = config.stash.get(RESULTS, None)
    if path is None or not path.exists():
        return
    terminalreporter.section("chaos results")
    for line in path.read_text().splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(kept in {path})")
