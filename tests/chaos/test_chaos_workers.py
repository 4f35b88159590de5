"""A dispatcher worker crashes in the middle of a steady load and is started again later.

The surviving worker takes over the dead one's partitions after the session timeout and reads them from
the last committed offset, so whatever the dead worker had sent but not yet committed comes round again.
"""
import time

from tests.chaos.harness import Chaos

PHASE_S = 8.0


def test_a_dispatcher_killed_mid_load_loses_and_resends_nothing(chaos: Chaos) -> None:
    with chaos.load("dispatcher-kill") as load:
        time.sleep(PHASE_S)
        chaos.stack.kill("dispatcher-1")
        time.sleep(2 * PHASE_S)
        chaos.stack.restart("dispatcher-1")
        time.sleep(PHASE_S)
    chaos.assert_passed(chaos.finish("dispatcher_sigkill", load.accepted()))
