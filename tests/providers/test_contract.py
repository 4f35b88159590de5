"""One contract, every adapter: each outcome class produced by real HTTP against the sandbox."""
import statistics
import threading
import time
from collections.abc import Callable

import pytest
import requests
from sandbox_client import HOST, Sandbox

from deploy.processes import port_open
from providers import (
    AmbiguousError,
    MailService,
    PermanentError,
    ProviderFailure,
    SendResult,
    ThrottledError,
    TransientError,
)
from schemas.model import Mail
from schemas.vocabulary import FailureCause, Outcome

MailFactory = Callable[..., Mail]
# How each API refuses a recipient: Postmark with 422 and ErrorCode 406 (inactive), the others with 400.
RECIPIENT_REFUSAL = {"postmark": (422, "inactive")}


def test_accepted_send_returns_the_id_the_provider_recorded(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory
) -> None:
    mail = new_mail(recipients=("ada@example.com", "grace@example.org"))

    result = service.send(mail)

    assert isinstance(result, SendResult)
    assert result.provider == provider == service.name
    assert 200 <= result.status < 300
    assert result.message_id and result.latency_ms > 0
    [received] = sandbox.messages(provider)
    assert received["id"] == result.message_id
    assert received["recipients"] == list(mail.recipients)
    assert (received["sender"], received["subject"], received["text"]) == (mail.sender, mail.subject, mail.content)
    assert mail.id in received["custom"].values()


def test_rejected_recipient_is_permanent(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory
) -> None:
    sandbox.set_faults(provider, reject_recipients=["bounce"])

    with pytest.raises(PermanentError) as caught:
        service.send(new_mail(recipients=("ada@example.com", "will-bounce@example.com")))

    status, wording = RECIPIENT_REFUSAL.get(provider, (400, "valid address"))
    assert caught.value.outcome is Outcome.PERMANENT
    assert caught.value.status == status
    assert caught.value.provider == provider
    assert wording in caught.value.detail and caught.value.body
    assert sandbox.messages(provider) == []


def test_malformed_address_is_permanent(sandbox: Sandbox, service: MailService, new_mail: MailFactory) -> None:
    with pytest.raises(PermanentError):
        service.send(new_mail(recipients=("not-an-address",)))


def test_wrong_api_key_is_a_provider_failure(sandbox: Sandbox, provider: str, new_mail: MailFactory) -> None:
    service = sandbox.service(provider, api_key="wrong-key")

    with pytest.raises(ProviderFailure) as caught:
        service.send(new_mail())

    assert caught.value.outcome is Outcome.PROVIDER_FAILURE
    assert caught.value.status == 401
    assert caught.value.detail
    assert sandbox.messages(provider) == []


def test_rate_limit_is_throttled_with_retry_after(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory
) -> None:
    sandbox.set_faults(provider, error_rate=1.0, status=429, retry_after=7)

    with pytest.raises(ThrottledError) as caught:
        service.send(new_mail())

    assert caught.value.outcome is Outcome.TRANSIENT
    assert caught.value.cause is FailureCause.RATE_LIMIT
    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_is_transient_on_the_provider_side(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, status: int
) -> None:
    sandbox.set_faults(provider, error_rate=1.0, status=status)

    with pytest.raises(TransientError) as caught:
        service.send(new_mail())

    assert not isinstance(caught.value, ThrottledError)
    assert caught.value.outcome is Outcome.TRANSIENT
    assert caught.value.cause is FailureCause.PROVIDER
    assert caught.value.status == status
    assert caught.value.detail


@pytest.mark.parametrize("status", [402, 403, 413])
def test_account_and_size_refusals_are_provider_failures(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, status: int
) -> None:
    sandbox.set_faults(provider, error_rate=1.0, status=status)

    with pytest.raises(ProviderFailure) as caught:
        service.send(new_mail())

    assert caught.value.status == status


def test_provider_down_is_a_network_failure_until_it_recovers(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory
) -> None:
    service.send(new_mail())  # leaves a kept-alive connection that "down" must also cut
    sandbox.set_faults(provider, down=True)
    assert not port_open(HOST, sandbox.ports[provider])

    with pytest.raises(TransientError) as caught:
        service.send(new_mail())

    assert caught.value.cause is FailureCause.NETWORK
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, requests.ConnectionError)

    sandbox.reset()
    assert service.send(new_mail()).message_id


def test_unanswered_request_is_ambiguous(sandbox: Sandbox, provider: str, new_mail: MailFactory) -> None:
    service = sandbox.service(provider, read_timeout=0.3)
    sandbox.set_faults(provider, timeout=True)

    started = time.monotonic()
    with pytest.raises(AmbiguousError) as caught:
        service.send(new_mail())

    assert 0.3 <= time.monotonic() - started < 3
    assert caught.value.outcome is Outcome.AMBIGUOUS
    assert isinstance(caught.value.__cause__, requests.ReadTimeout)
    # The provider took the mail and only withheld the answer: exactly why a retry may duplicate it.
    assert len(sandbox.messages(provider)) == 1


def test_latency_fault_adds_latency(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory
) -> None:
    baseline = statistics.median(service.send(new_mail()).latency_ms for _ in range(5))
    sandbox.set_faults(provider, latency_ms=150)

    slowed = service.send(new_mail()).latency_ms

    assert slowed >= 150
    assert slowed - baseline >= 100


def test_error_rate_fails_about_that_share(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory
) -> None:
    sandbox.set_faults(provider, error_rate=0.5, status=503)
    failures = 0
    for _ in range(200):
        try:
            service.send(new_mail())
        except TransientError as err:
            assert err.status == 503
            failures += 1

    assert 60 <= failures <= 140
    assert len(sandbox.messages(provider)) == 200 - failures


def test_concurrent_sends_from_worker_threads(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory
) -> None:
    results: list[SendResult] = []
    sessions: set[int] = set()

    def worker() -> None:
        sessions.add(id(service.session))
        results.extend(service.send(new_mail()) for _ in range(50))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(sessions) == 4, "each worker thread needs its own requests session"
    assert len({result.message_id for result in results}) == 200
    assert len(sandbox.messages(provider)) == 200


def test_an_accepted_answer_without_a_message_id_is_still_a_send(provider: str, service: MailService) -> None:
    """The provider took the mail: sending it again would duplicate it, so only the id goes missing."""
    accepted = requests.Response()
    accepted.status_code = 202 if provider == "sendgrid" else 200
    accepted._content = b"{}" if provider == "mailgun" else b""
    assert service.post_process(accepted) == ""
