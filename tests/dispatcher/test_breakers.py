"""Breaker rules the dispatcher relies on, including the gaps it closes in the circuitbreaker library."""
import circuitbreaker
import pytest

from dispatcher.breakers import BreakerBoard, ProviderBreaker
from providers.errors import AmbiguousError, PermanentError, ProviderFailure, TransientError
from schemas.vocabulary import FailureCause


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(circuitbreaker, "monotonic", fake)
    return fake


def transient() -> TransientError:
    return TransientError("mailgun", "503", cause=FailureCause.PROVIDER, status=503)


def test_opens_after_threshold_and_half_opens_after_recovery(clock):
    breaker = ProviderBreaker("mailgun", failures=3, recovery_s=10)
    for _ in range(2):
        breaker.failed(transient())
    assert breaker.state == "closed" and breaker.admit()
    breaker.failed(transient())
    assert breaker.state == "open" and not breaker.admit()
    clock.now += 11
    assert breaker.state == "half_open"


def test_half_open_admits_exactly_one_probe_until_it_ends(clock):
    breaker = ProviderBreaker("mailgun", failures=1, recovery_s=5)
    breaker.failed(transient())
    clock.now += 6
    assert breaker.admit()
    assert not breaker.admit() and not breaker.admit()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.admit() and breaker.admit()


def test_a_failed_probe_opens_again(clock):
    breaker = ProviderBreaker("mailgun", failures=2, recovery_s=5)
    breaker.failed(transient())
    breaker.failed(transient())
    clock.now += 6
    assert breaker.admit()
    breaker.failed(transient())
    assert breaker.state == "open" and not breaker.admit()


@pytest.mark.parametrize("error", [
    PermanentError("mailgun", "bad recipient", status=400),
    AmbiguousError("mailgun", "read timeout"),
])
def test_outcomes_about_the_message_leave_the_breaker_untouched(clock, error):
    breaker = ProviderBreaker("mailgun", failures=2, recovery_s=5)
    breaker.failed(transient())
    breaker.failed(error)
    breaker.failed(transient())
    assert breaker.state == "open", "the message-level outcome must not reset the failure count"


def test_a_provider_failure_opens_at_once(clock):
    breaker = ProviderBreaker("sendgrid", failures=5, recovery_s=5)
    breaker.failed(ProviderFailure("sendgrid", "401 unauthorized", status=401))
    assert breaker.state == "open"


def test_board_reports_every_provider_state(clock):
    board = BreakerBoard(["mailgun", "sendgrid"], failures=1, recovery_s=5)
    board["mailgun"].failed(transient())
    assert board.states() == {"mailgun": "open", "sendgrid": "closed"}
