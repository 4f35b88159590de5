"""Per-key request rates: a token bucket per key in each gateway process. A request takes one token, a batch one
per mail.

The gateway's processes share nothing, so each admits 1/`processes` of a key's rate and burst: together they
never admit more than the key's limit, whichever process a request lands on. (A client holding one
keep-alive connection meets one process, so it may see 429 a little below its limit; `Retry-After` says
when to come back.)
"""
import math
import time
from collections.abc import Callable

from ingest.keys.api_key import DEFAULT_RATE, UNLIMITED, ApiKey


class KeyLimits:
    def __init__(self, default_rate: float, default_burst: int, processes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._default_rate = default_rate
        self._default_burst = default_burst
        self._share = max(1, processes)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def within_default(self, key: ApiKey) -> str | None:
        """Why the key's own rate or burst is above the gateway's default, None when it is not: the most a
        tenant's administrator may give its keys (only an operator lifts a key above it)."""
        if self._default_rate == UNLIMITED or key.rate_per_s == DEFAULT_RATE and not key.burst:
            return None
        if key.rate_per_s != DEFAULT_RATE and not 0 < key.rate_per_s <= self._default_rate:
            return f"rate_per_s: at most the gateway's {self._default_rate:g} requests per second"
        if key.burst > self._default_burst:
            return f"burst: at most the gateway's {self._default_burst}"
        return None

    def try_take(self, key: ApiKey) -> float:
        """Take one request; 0 when taken, else the seconds until one is free."""
        taken, wait_s = self.take(key, 1)
        return 0.0 if taken else wait_s

    def take(self, key: ApiKey, wanted: int) -> tuple[int, float]:
        """Take up to `wanted` tokens at once (a batch takes one per mail): how many were taken, and, when fewer
        than wanted, the seconds until as many as were refused (at most the bucket's capacity) are free."""
        rate = self._default_rate if key.rate_per_s == DEFAULT_RATE else key.rate_per_s
        if rate == UNLIMITED:
            return wanted, 0.0
        burst = key.burst or (self._default_burst if key.rate_per_s == DEFAULT_RATE else 0) or 2 * rate
        rate, capacity = rate / self._share, max(1.0, burst / self._share)
        now = self._clock()
        tokens, stamp = self._buckets.get(key.id, (capacity, now))
        tokens = min(capacity, tokens + (now - stamp) * rate)
        taken = min(wanted, int(tokens))
        tokens -= taken
        self._buckets[key.id] = (tokens, now)
        if taken == wanted:
            return taken, 0.0
        return taken, (min(wanted - taken, capacity) - tokens) / rate


def retry_after(wait_s: float) -> str:
    """Whole seconds, rounded up, at least one: what the Retry-After header can say."""
    return str(max(1, math.ceil(wait_s)))
