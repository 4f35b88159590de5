"""The analytics path under faults: the sink crashes, ClickHouse goes away. Afterwards ClickHouse must hold
every event the pipeline wrote to mail.events exactly once, and the questions must count nothing twice.

The sink commits a batch's offsets only after its insert, so a crash re-reads (and re-inserts) the batch:
the raw row count may grow, the FINAL reads must not.
"""
import signal
import time

import pytest

from schemas.events import now_ms
from tests.chaos.harness import Chaos
from tests.chaos.warehouse import completeness

PHASE_S = 8.0
CLICKHOUSE_OUTAGE_S = 30.0


def check_clickhouse(chaos: Chaos, case: str, accepted: list[str], since_ms: int) -> None:
    result = chaos.finish(case, accepted)
    held = completeness(chaos.bootstrap, chaos.clickhouse(), accepted, since_ms)
    chaos.record(held.line(case))
    chaos.assert_passed(result)
    assert not held.problems(), "; ".join(held.problems())


def test_the_sink_killed_mid_load_leaves_no_event_missing_or_doubled(chaos: Chaos) -> None:
    since_ms = now_ms()
    with chaos.load("sink-kill") as load:
        time.sleep(PHASE_S)
        chaos.stack.kill("sink")
        time.sleep(PHASE_S)
        chaos.stack.restart("sink")
        time.sleep(PHASE_S)
    check_clickhouse(chaos, "sink_sigkill", load.accepted(), since_ms)


@pytest.mark.slow
def test_clickhouse_down_for_30s_leaves_no_event_missing_or_doubled(chaos: Chaos) -> None:
    since_ms = now_ms()
    with chaos.load("clickhouse-outage") as load:
        time.sleep(PHASE_S)
        chaos.stack.kill("clickhouse", signal.SIGTERM)
        time.sleep(CLICKHOUSE_OUTAGE_S)
        chaos.stack.restart("clickhouse")
        time.sleep(PHASE_S)
    check_clickhouse(chaos, "clickhouse_outage_30s", load.accepted(), since_ms)
