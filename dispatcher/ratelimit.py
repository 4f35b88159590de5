"""Per-provider send rates for the whole fleet, shared out across the workers alive now.

A token bucket per provider refills at (fleet rate / workers alive), holding at most one second of sends,
so a fleet of any size stays under the provider's limit without talking to each other per send.
"""
import time
from collections.abc import Callable


class RateLimits:
    def __init__(self, rates: dict[str, float], fleet_size: Callable[[], int],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rates = rates
        self._fleet_size = fleet_size
        self._clock = clock
        self._tokens = {name: 1.0 for name in rates}
        self._stamp = {name: clock() for name in rates}

    def try_take(self, provider: str) -> float:
        """Take one send; returns 0 when taken, else the seconds until one is free."""
        if provider not in self._rates:
            return 0.0
        rate = self._rates[provider] / max(1, self._fleet_size())
        now = self._clock()
        tokens = min(max(rate, 1.0), self._tokens[provider] + (now - self._stamp[provider]) * rate)
        self._stamp[provider] = now
        if tokens >= 1.0:
            self._tokens[provider] = tokens - 1.0
            return 0.0
        self._tokens[provider] = tokens
        return (1.0 - tokens) / rate

    def give_back(self, provider: str) -> None:
        """A taken send that did not happen (the provider was not admitted)."""
        if provider in self._rates:
            self._tokens[provider] += 1.0


    def set_rates(self, rates: dict[str, float]) -> None:
        """New fleet rates, applied at once; a provider that keeps a limit keeps its bucket's tokens."""
        now = self._clock()
        self._tokens = {name: min(self._tokens.get(name, 1.0), max(rate, 1.0)) for name, rate in rates.items()}
        self._stamp = {name: self._stamp.get(name, now) for name in rates}
        self._rates = dict(rates)
