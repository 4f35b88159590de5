"""One contract, every adapter: each outcome class produced by real HTTP against the sandbox."""
import asyncio
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from loop_thread import Run
from multidict import CIMultiDict, CIMultiDictProxy
from sandbox_client import HOST, Sandbox
from test_sandbox import wait_for

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
from providers.base import CONNECTIONS_PER_PROVIDER, Answer
from schemas.model import Mail
from schemas.vocabulary import FailureCause, Outcome

MailFactory = Callable[..., Mail]
# How each API refuses a recipient: Postmark with 422 and ErrorCode 406 (inactive), the others with 400.
RECIPIENT_REFUSAL = {"postmark": (422, "inactive")}


def test_accepted_send_returns_the_id_the_provider_recorded(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, run: Run
) -> None:
    mail = new_mail(recipients=("ada@example.com", "grace@example.org"))

    result = run(service.send(mail))

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
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, run: Run
) -> None:
    sandbox.set_faults(provider, reject_recipients=["bounce"])

    with pytest.raises(PermanentError) as caught:
        run(service.send(new_mail(recipients=("ada@example.com", "will-bounce@example.com"))))

    status, wording = RECIPIENT_REFUSAL.get(provider, (400, "valid address"))
    assert caught.value.outcome is Outcome.PERMANENT
    assert caught.value.status == status
    assert caught.value.provider == provider
    assert wording in caught.value.detail and caught.value.body
    assert sandbox.messages(provider) == []


def test_malformed_address_is_permanent(
    sandbox: Sandbox, service: MailService, new_mail: MailFactory, run: Run
) -> None:
    with pytest.raises(PermanentError):
        run(service.send(new_mail(recipients=("not-an-address",))))


def test_wrong_api_key_is_a_provider_failure(sandbox: Sandbox, provider: str, new_mail: MailFactory, run: Run) -> None:
    service = sandbox.service(provider, api_key="wrong-key")

    with pytest.raises(ProviderFailure) as caught:
        run(service.send(new_mail()))

    assert caught.value.outcome is Outcome.PROVIDER_FAILURE
    assert caught.value.status == 401
    assert caught.value.detail
    assert sandbox.messages(provider) == []


def test_rate_limit_is_throttled_with_retry_after(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, run: Run
) -> None:
    sandbox.set_faults(provider, error_rate=1.0, status=429, retry_after=7)

    with pytest.raises(ThrottledError) as caught:
        run(service.send(new_mail()))

    assert caught.value.outcome is Outcome.TRANSIENT
    assert caught.value.cause is FailureCause.RATE_LIMIT
    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_is_transient_on_the_provider_side(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, status: int, run: Run
) -> None:
    sandbox.set_faults(provider, error_rate=1.0, status=status)

    with pytest.raises(TransientError) as caught:
        run(service.send(new_mail()))

    assert not isinstance(caught.value, ThrottledError)
    assert caught.value.outcome is Outcome.TRANSIENT
    assert caught.value.cause is FailureCause.PROVIDER
    assert caught.value.status == status
    assert caught.value.detail


@pytest.mark.parametrize("status", [402, 403, 413])
def test_account_and_size_refusals_are_provider_failures(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, status: int, run: Run
) -> None:
    sandbox.set_faults(provider, error_rate=1.0, status=status)

    with pytest.raises(ProviderFailure) as caught:
        run(service.send(new_mail()))

    assert caught.value.status == status


def test_provider_down_is_a_network_failure_until_it_recovers(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, run: Run
) -> None:
    run(service.send(new_mail()))  # leaves a kept-alive connection that "down" must also cut
    sandbox.set_faults(provider, down=True)
    assert not port_open(HOST, sandbox.ports[provider])

    with pytest.raises(TransientError) as caught:
        run(service.send(new_mail()))

    assert caught.value.cause is FailureCause.NETWORK
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)

    sandbox.reset()
    assert run(service.send(new_mail())).message_id


def test_unanswered_request_is_ambiguous(sandbox: Sandbox, provider: str, new_mail: MailFactory, run: Run) -> None:
    service = sandbox.service(provider, read_timeout=0.3)
    sandbox.set_faults(provider, timeout=True)

    started = time.monotonic()
    with pytest.raises(AmbiguousError) as caught:
        run(service.send(new_mail()))

    assert 0.3 <= time.monotonic() - started < 3
    assert caught.value.outcome is Outcome.AMBIGUOUS
    assert isinstance(caught.value.__cause__, aiohttp.SocketTimeoutError)
    assert caught.value.detail == "no answer within 0.3s after sending"
    # The provider took the mail and only withheld the answer: exactly why a retry may duplicate it.
    assert len(sandbox.messages(provider)) == 1


def test_latency_fault_adds_latency(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, run: Run
) -> None:
    baseline = statistics.median(run(service.send(new_mail())).latency_ms for _ in range(5))
    sandbox.set_faults(provider, latency_ms=150)

    slowed = run(service.send(new_mail())).latency_ms

    assert slowed >= 150
    assert slowed - baseline >= 100


def test_error_rate_fails_about_that_share(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, run: Run
) -> None:
    sandbox.set_faults(provider, error_rate=0.5, status=503)
    failures = 0
    for _ in range(200):
        try:
            run(service.send(new_mail()))
        except TransientError as err:
            assert err.status == 503
            failures += 1

    assert 60 <= failures <= 140
    assert len(sandbox.messages(provider)) == 200 - failures


def test_concurrent_sends_share_a_bounded_pool_of_connections(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, run: Run
) -> None:
    async def many() -> list[str]:
        return [result.message_id for result in await asyncio.gather(*(service.send(new_mail()) for _ in range(200)))]

    assert len(set(run(many()))) == 200
    assert len(sandbox.messages(provider)) == 200
    assert 1 <= open_connections(sandbox.ports[provider]) <= CONNECTIONS_PER_PROVIDER


def test_a_pooled_connection_the_provider_closed_is_not_reused(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, run: Run
) -> None:
    """A provider may close a kept-alive connection while it waits in the pool (its idle timeout, a restart):
    the next send opens a new one instead of failing on the dead one."""
    run(service.send(new_mail()))
    assert open_connections(sandbox.ports[provider]) == 1
    sandbox.set_faults(provider, down=True)  # closes every connection, then the port
    sandbox.clear_faults()

    assert run(service.send(new_mail())).message_id
    assert len(sandbox.messages(provider)) == 2


def test_a_connection_not_made_in_time_is_a_network_failure(
    sandbox: Sandbox, provider: str, unanswered_port: int, new_mail: MailFactory, run: Run
) -> None:
    service = sandbox.service(provider, **{f"{provider.upper()}_BASE_URL": f"http://{HOST}:{unanswered_port}",
                                           "MERCURY_PROVIDER_CONNECT_TIMEOUT": "0.3"})

    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        run(service.send(new_mail()))

    assert 0.3 <= time.monotonic() - started < 3
    assert (caught.value.cause, caught.value.status) == (FailureCause.NETWORK, None)
    assert caught.value.detail == "no connection within 0.3s"
    assert isinstance(caught.value.__cause__, aiohttp.ConnectionTimeoutError)


def test_close_from_another_thread_releases_the_connections(
    sandbox: Sandbox, provider: str, service: MailService, new_mail: MailFactory, run: Run
) -> None:
    """The dispatcher closes an adapter it replaced or removed from whichever thread applied the change."""
    run(service.send(new_mail()))
    closer = threading.Thread(target=service.close)
    closer.start()
    closer.join(timeout=5)

    assert wait_for(lambda: open_connections(sandbox.ports[provider]) == 0)
    assert run(service.send(new_mail())).message_id, "a send after close() opens a new session"


def test_an_accepted_answer_without_a_message_id_is_still_a_send(provider: str, service: MailService) -> None:
    """The provider took the mail: sending it again would duplicate it, so only the id goes missing."""
    accepted = Answer(202 if provider == "sendgrid" else 200, CIMultiDictProxy(CIMultiDict()),
                      b"{}" if provider == "mailgun" else b"")
    assert service.post_process(accepted) == ""


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose listen queue is full: the kernel drops every further SYN, so a connect hangs until its
    timeout, as with a host that is down or a firewall that drops."""
    with socket.create_server((HOST, 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(2)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex((HOST, port))
        yield port
        for filler in fillers:
            filler.close()


def open_connections(port: int) -> int:
    """This process's established TCP connections to `port` on the loopback (Linux /proc)."""
    sockets = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            sockets.add(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # closed meanwhile
            continue
    established = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port, state, inode = int(fields[2].split(":")[1], 16), fields[3], fields[9]
        established += remote_port == port and state == "01" and f"socket:[{inode}]" in sockets
    return established

