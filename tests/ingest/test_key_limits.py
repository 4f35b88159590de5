"""Per-key token buckets: a key's rate and burst, shared out over the gateway's processes."""
import pytest

from ingest.keys.api_key import mint
from ingest.keys.limits import KeyLimits, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def admitted(limits: KeyLimits, key, tries: int) -> int:
    return sum(1 for _ in range(tries) if limits.try_take(key) == 0)


def test_a_key_gets_its_burst_at_once_then_its_rate():
    clock = Clock()
    limits = KeyLimits(100, 200, processes=1, clock=clock)
    key, _ = mint(rate_per_s=10, burst=5)
    assert admitted(limits, key, 20) == 5
    wait = limits.try_take(key)
    assert 0 < wait <= 0.1
    clock.now += 1.0
    assert admitted(limits, key, 20) == 5  # ten refilled, but a bucket holds five


def test_each_process_admits_its_share():
    clock = Clock()
    key, _ = mint(rate_per_s=10, burst=10)
    processes = [KeyLimits(100, 200, processes=2, clock=clock) for _ in range(2)]
    assert sum(admitted(p, key, 50) for p in processes) == 10
    clock.now += 1.0
    assert sum(admitted(p, key, 50) for p in processes) == 10


def test_keys_without_their_own_limit_take_the_gateways_and_zero_is_unlimited():
    clock = Clock()
    limits = KeyLimits(2, 3, processes=1, clock=clock)
    default, _ = mint()
    unlimited, _ = mint(rate_per_s=0)
    assert admitted(limits, default, 10) == 3
    assert admitted(limits, unlimited, 10_000) == 10_000
    assert admitted(KeyLimits(0, 0, processes=1, clock=clock), default, 1000) == 1000


def test_keys_do_not_share_a_bucket():
    limits = KeyLimits(1, 1, processes=1, clock=Clock())
    first, _ = mint()
    second, _ = mint()
    assert admitted(limits, first, 5) == 1 and admitted(limits, second, 5) == 1


def test_retry_after_is_whole_seconds_rounded_up():
    assert [retry_after(s) for s in (0.01, 1.0, 1.2, 59.5)] == ["1", "1", "2", "60"]


def test_a_batch_takes_one_token_per_mail_and_as_many_as_are_left():
    clock = Clock()
    limits = KeyLimits(100, 200, processes=2, clock=clock)
    key, _ = mint(rate_per_s=10, burst=20)
    assert limits.take(key, 4) == (4, 0.0)
    taken, wait_s = limits.take(key, 10)
    assert taken == 6 and wait_s == 4 / 5  # this process's share: a bucket of 10, 5 tokens a second
    clock.now += 0.4
    assert limits.take(key, 1) == (1, 0.0) and limits.take(key, 1)[0] == 1
    assert limits.take(key, 0) == (0, 0.0)
    # waits for a full bucket at most, never for what cannot fit
    assert limits.take(key, 1000) == (0, pytest.approx(10 / 5))
    unlimited, _ = mint(rate_per_s=0)
    assert limits.take(unlimited, 1000) == (1000, 0.0)
