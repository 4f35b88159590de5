"""One circuit breaker per provider, with the gaps of the circuitbreaker library closed.

circuitbreaker 2.1.3 lets every concurrent call through while half-open, and any exception outside its
`expected_exception` resets the failure count. Here a half-open breaker admits one probe at a time, and
an outcome that says nothing about the provider's health (a bad recipient, an ambiguous timeout) leaves
the breaker exactly as it was.
"""
import logging

from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, CircuitBreaker

from providers.errors import ProviderError, ProviderFailure, TransientError

log = logging.getLogger("mercury.dispatcher.breakers")


class ProviderBreaker:
    def __init__(self, provider: str, failures: int, recovery_s: float) -> None:
        self.provider = provider
        self._threshold = failures
        self._breaker = CircuitBreaker(
            failure_threshold=failures,
            recovery_timeout=recovery_s,
            expected_exception=(TransientError, ProviderFailure),
            name=provider,
        )
        self._probing = False

    @property
    def state(self) -> str:
        return self._breaker.state

    def admit(self) -> bool:
        """Whether a send may go to this provider now; a half-open breaker admits a single probe."""
        state = self._breaker.state
        if state == STATE_CLOSED:
            return True
        if state == STATE_HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def succeeded(self) -> None:
        before = self._breaker.state
        self._probing = False
        self._breaker.reset()
        self._log_change(before)

    def failed(self, err: ProviderError) -> None:
        """Count transient and provider-level failures; an auth or account failure opens at once.

        Any other outcome says nothing about the provider's health: the breaker stays as it was, but
        a half-open breaker lets its next probe through."""
        self._probing = False
        if not isinstance(err, (TransientError, ProviderFailure)):
            return
        before = self._breaker.state
        hits = self._threshold if isinstance(err, ProviderFailure) else 1
        for _ in range(hits):
            # The context-manager exit is the library's public way to record one failure.
            self._breaker.__exit__(type(err), err, None)
        self._log_change(before)

    def _log_change(self, before: str) -> None:
        after = self._breaker.state
        if after != before:
            log.warning("event=breaker_%s provider=%s from=%s failures=%d", after, self.provider, before,
                        self._breaker.failure_count)


class BreakerBoard:
    def __init__(self, providers: list[str], failures: int, recovery_s: float) -> None:
        self._breakers = {name: ProviderBreaker(name, failures, recovery_s) for name in providers}

    def __getitem__(self, provider: str) -> ProviderBreaker:
        return self._breakers[provider]

    def states(self) -> dict[str, str]:
        return {name: b.state for name, b in self._breakers.items()}
