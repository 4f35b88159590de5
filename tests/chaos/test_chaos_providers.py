"""Provider faults under a steady load, injected through the sandbox: a flapping provider, one that times
out after accepting (the ambiguous case), one that rate-limits with Retry-After, and one that is down for
20 s. The other provider stays healthy, so every mail can be delivered; none may be lost or sent twice
unless the pipeline itself reported the send as ambiguous."""
import time

import pytest

from tests.chaos.accounting import dispatches, failed_attempts
from tests.chaos.harness import Chaos

WARM_S = 5.0
FAULT_S = 15.0
OUTAGE_S = 20.0


def under_fault(chaos: Chaos, label: str, provider: str, fault_s: float,
                **faults: object) -> tuple[list[str], int, int]:
    """Run the load, inject the faults for `fault_s` in its middle; returns the accepted ids and the fault's
    start and end (ms)."""
    with chaos.load(label) as load:
        time.sleep(WARM_S)
        started = chaos.fault(provider, **faults)
        time.sleep(fault_s)
        chaos.clear_faults()
        ended = time.time()
        time.sleep(WARM_S)
    return load.accepted(), int(started * 1000), int(ended * 1000)


def test_a_flapping_provider_loses_and_resends_nothing(chaos: Chaos) -> None:
    accepted, _, _ = under_fault(chaos, "flapping", "sendgrid", FAULT_S, error_rate=0.5, status=503)
    chaos.assert_passed(chaos.finish("provider_flapping_50pct_503", accepted))


def test_a_provider_timing_out_after_accepting_duplicates_only_what_it_reports_ambiguous(
        chaos: Chaos) -> None:
    accepted, _, _ = under_fault(chaos, "timeout", "mailgun", FAULT_S, timeout=True)
    chaos.assert_passed(chaos.finish("provider_timeout_after_accept", accepted))


def test_a_rate_limiting_provider_loses_and_resends_nothing(chaos: Chaos) -> None:
    accepted, started, ended = under_fault(chaos, "rate-limit", "mailgun", FAULT_S, error_rate=1.0, status=429,
                                           retry_after=3)
    result = chaos.finish("provider_429_retry_after_3s", accepted)
    chaos.measure("rate_limited_answers", failed_attempts(chaos.clickhouse(), "mailgun", 429, started, ended))
    chaos.assert_passed(result)


@pytest.mark.slow
def test_a_provider_down_for_20s_is_abandoned_by_every_worker(chaos: Chaos) -> None:
    """How long the fleet keeps sending to a provider that went down: from the fault's start to the last
    `dispatched` event to it during the outage, per worker and overall (measured, not asserted)."""
    accepted, started, ended = under_fault(chaos, "provider-down", "mailgun", OUTAGE_S, error_rate=1.0, status=503)
    result = chaos.finish("provider_down_20s", accepted)
    per_worker = dispatches(chaos.clickhouse(), "mailgun", started, ended)
    for worker, (last_ms, count) in sorted(per_worker.items()):
        chaos.measure("provider_down_to_no_sends_ms", last_ms - started, worker=worker, dispatches=count)
    last = max((last_ms for last_ms, _ in per_worker.values()), default=started)
    chaos.measure("provider_down_to_no_sends_ms", last - started)
    chaos.assert_passed(result)
