"""The broker dies under load and is started again.

While it is down the gateway must answer 503 and never 202: nothing it could not hand to the broker may
be promised. After the restart the pipeline must resume on its own: the mails posted after it are all
delivered (or dead-lettered), none sent twice unless the pipeline reported the send ambiguous. And no mail
may be reported `sent` that no provider received.

The local broker keeps records, topics and committed offsets in memory only, so its restart loses every
mail it had acknowledged but not yet handed on to a provider. Those are counted apart, as
lost_with_broker_memory, and do not fail the case: they are the price of the memory-only local broker,
not of the pipeline. Production runs replicated Kafka (acks=all, min.insync.replicas=2), where an
acknowledged record survives the loss of a broker and such a mail would count as lost.
"""
import time
from collections import Counter

import pytest

from tests.chaos.accounting import received, sent_reported
from tests.chaos.harness import Chaos

WARM_S = 8.0
BROKER_DOWN_S = 6.0
AFTER_S = 20.0


@pytest.mark.slow
def test_a_broker_restart_refuses_mails_while_down_and_resumes_on_its_own(chaos: Chaos) -> None:
    with chaos.load("broker-restart") as load:
        time.sleep(WARM_S)
        chaos.stack.kill("broker")
        down_at = time.time()
        time.sleep(BROKER_DOWN_S)
        restart_at = time.time()
        chaos.stack.restart("broker")
        up_at = time.time()
        time.sleep(AFTER_S)
    while_down = Counter(a.status for a in load.answers() if a.sent_at >= down_at and a.answered_at <= restart_at)
    since_up = Counter(a.status for a in load.answers() if a.sent_at >= up_at)
    after = load.accepted(lambda a: a.sent_at >= up_at)
    before = sorted(set(load.accepted()) - set(after))

    chaos.settle(after)
    earlier = chaos.tally("broker_restart_before", before)
    false_deliveries = sent_reported(chaos.clickhouse(), load.accepted()) - received(chaos.sandbox).keys()
    result = chaos.tally(
        "broker_restart", after, answers_while_down=sum(while_down.values()), answered_503_while_down=while_down[503],
        answers_after_restart=sum(since_up.values()), false_deliveries=len(false_deliveries),
        accepted_before_restart=len(before), delivered_before_restart=len(earlier.delivered),
        lost_with_broker_memory=len(earlier.lost))
    chaos.record(result.line())

    problems = []
    if not while_down:
        problems.append("no request reached the gateway while the broker was down: the outage was not exercised")
    if set(while_down) - {503}:
        problems.append(f"answers while the broker was down: {dict(while_down)} (only 503 is allowed)")
    if false_deliveries:
        problems.append(f"reported sent but received by no provider: {sorted(false_deliveries)[:5]}")
    if not after:
        problems.append(f"no mail accepted after the broker restart (answers: {dict(since_up)}): the gateway did "
                        f"not resume on its own; see {chaos.stack.processes['ingest'].log_path}")
    if not result.passed:
        problems.append(result.explain(chaos.clickhouse()))
    assert not problems, "\n".join(problems)
