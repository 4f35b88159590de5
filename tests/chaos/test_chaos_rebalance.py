"""Routine operations under load, not faults: workers joining and leaving every few seconds, and a rolling
restart. Providers answer slowly, so sends are in flight at every revocation, and one fails half the time,
so retries fall due all the time. Partitions must really move between workers (checked in their logs); no
mail may be lost or sent twice, and a rolling restart (every stop a SIGTERM) may not leave a send ambiguous.
"""
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.stack import LocalStack, StackConfig
from schemas.logs import parse_line
from schemas.vocabulary import EventType, Outcome
from tests.chaos.conftest import CHAOS_ENV
from tests.chaos.harness import Chaos

WORKERS = 4
STORM_STEP_S = 12.0
# Sends take over a second, so every revocation meets sends under way; the read timeout (5 s) stays above it.
SLOW_MS = 1200


@pytest.fixture(scope="module")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Four dispatchers, one per partition when all run."""
    config = StackConfig.on_free_ports(tmp_path_factory.mktemp("rebalance"), dispatchers=WORKERS,
                                       extra_env={**CHAOS_ENV, "MERCURY_PROVIDER_READ_TIMEOUT": "5"})
    stack = LocalStack(config).start()
    yield stack
    stack.stop()


def dispatchers(n: int) -> list[str]:
    return [f"dispatcher-{i}" for i in range(n)]


def run_only(chaos: Chaos, wanted: list[str]) -> None:
    """Stop (SIGTERM) the dispatchers not wanted, then start those wanted and not running."""
    for name in dispatchers(WORKERS):
        if name not in wanted and chaos.stack.processes[name].alive():
            chaos.stack.kill(name, signal.SIGTERM)
    for name in wanted:
        if not chaos.stack.processes[name].alive():
            chaos.stack.restart(name)


def request_partition_owners(logs: Path) -> dict[int, set[str]]:
    """Per partition of mail.requests, every worker instance that was ever assigned it."""
    owners: dict[int, set[str]] = {}
    for name in dispatchers(WORKERS):
        for line in (logs / f"{name}.log").read_text(errors="replace").splitlines():
            fields = parse_line(line)
            if fields.get("event") != "partitions_assigned":
                continue
            for partition in re.findall(r"mail\.requests:(\d+)", fields["partitions"]):
                owners.setdefault(int(partition), set()).add(fields["worker"])
    return owners


def slow_and_flapping(chaos: Chaos) -> None:
    chaos.fault("mailgun", error_rate=0.5, status=503, latency_ms=SLOW_MS)
    chaos.fault("sendgrid", latency_ms=SLOW_MS)


@pytest.mark.slow
def test_a_rebalance_storm_loses_and_resends_nothing(chaos: Chaos) -> None:
    run_only(chaos, dispatchers(3))
    slow_and_flapping(chaos)
    with chaos.load("rebalance-storm") as load:
        for running in (1, 4, 2):
            time.sleep(STORM_STEP_S)
            run_only(chaos, dispatchers(WORKERS)[-running:] if running == 2 else dispatchers(running))
        time.sleep(STORM_STEP_S)
    chaos.clear_faults()
    owners = request_partition_owners(chaos.stack.logs)
    moved = sum(1 for workers in owners.values() if len(workers) > 1)
    result = chaos.finish("rebalance_storm_3_1_4_2", load.accepted(), partitions_moved=moved)
    assert moved >= 2, f"partitions did not move between workers: {owners}"
    chaos.assert_passed(result)


def test_a_rolling_restart_loses_resends_and_leaves_ambiguous_nothing(chaos: Chaos) -> None:
    run_only(chaos, dispatchers(WORKERS))
    slow_and_flapping(chaos)
    with chaos.load("rolling-restart") as load:
        time.sleep(4)
        for name in dispatchers(WORKERS):
            chaos.stack.kill(name, signal.SIGTERM)
            chaos.stack.restart(name)
            time.sleep(2)
    chaos.clear_faults()
    result = chaos.finish("rolling_restart_sigterm", load.accepted())
    chaos.assert_passed(result)
    assert not result.ambiguous, "a graceful stop leaves no send cut short"
    ambiguous_attempts = chaos.clickhouse().execute(
        "SELECT count() FROM events FINAL WHERE event = %(event)s AND outcome = %(outcome)s AND mail IN %(ids)s",
        {"event": str(EventType.ATTEMPT_FAILED), "outcome": str(Outcome.AMBIGUOUS),
         "ids": tuple(result.accepted)})[0][0]
    assert ambiguous_attempts == 0, f"{ambiguous_attempts} sends were reported cut short"
