"""Provider health shared through the health topic: what one worker learns, every worker applies."""
import asyncio
import time

import pytest

from dispatcher.health import Ticket
from providers.errors import AmbiguousError, PermanentError, ProviderFailure, ThrottledError, TransientError
from schemas.vocabulary import FailureCause

PROVIDERS = ["mailgun", "sendgrid"]


def transient(provider: str = "mailgun") -> TransientError:
    return TransientError(provider, "503 from the provider", cause=FailureCause.PROVIDER, status=503)


async def settle(check, timeout: float = 10.0) -> None:
    """Wait until `check()` holds: the other worker applies a change when it reads it back."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the change never reached the other worker"
        await asyncio.sleep(0.02)


def test_a_breaker_opened_by_one_worker_is_applied_by_the_other(fleet):
    a, b = fleet.health(PROVIDERS), fleet.health(PROVIDERS)

    async def scenario() -> None:
        for _ in range(3):
            a.failed(Ticket("mailgun"), transient())
        assert a.states()["mailgun"] == "open"
        await settle(lambda: b.states()["mailgun"] == "open")
        assert await b.admit("mailgun") is None
        assert await b.admit("sendgrid") == Ticket("sendgrid")

    fleet.run(scenario())


def test_a_worker_that_starts_later_reads_the_current_state(fleet):
    a = fleet.health(PROVIDERS)

    async def scenario() -> None:
        a.failed(Ticket("sendgrid"), ProviderFailure("sendgrid", "401 bad key", status=401))
        await a.flush()

    fleet.run(scenario())
    late = fleet.health(PROVIDERS)
    assert late.states() == {"mailgun": "closed", "sendgrid": "open"}


@pytest.mark.parametrize("error", [
    PermanentError("mailgun", "bad recipient", status=400),
])
def test_a_message_permanent_error_never_counts(fleet, error):
    a = fleet.health(PROVIDERS, failures=1)

    async def scenario() -> None:
        for _ in range(5):
            a.failed(Ticket("mailgun"), error)
        assert a.states()["mailgun"] == "closed"

    fleet.run(scenario())


@pytest.mark.parametrize("error", [
    transient(),
    AmbiguousError("mailgun", "no answer after sending"),
])
def test_transient_and_ambiguous_failures_count_toward_the_threshold(fleet, error):
    a = fleet.health(PROVIDERS, failures=2)

    async def scenario() -> None:
        a.failed(Ticket("mailgun"), error)
        assert a.states()["mailgun"] == "closed"
        a.failed(Ticket("mailgun"), error)
        assert a.states()["mailgun"] == "open"
        await a.flush()

    fleet.run(scenario())


def test_a_success_between_failures_resets_the_count(fleet):
    a = fleet.health(PROVIDERS, failures=2)

    async def scenario() -> None:
        a.failed(Ticket("mailgun"), transient())
        a.succeeded(Ticket("mailgun"))
        a.failed(Ticket("mailgun"), transient())
        assert a.states()["mailgun"] == "closed"

    fleet.run(scenario())


def test_half_open_admits_exactly_one_probe_across_the_fleet(fleet):
    workers = [fleet.health(PROVIDERS, failures=1, recovery_s=0.2) for _ in range(3)]

    async def scenario() -> list[Ticket | None]:
        workers[0].failed(Ticket("mailgun"), transient())
        await settle(lambda: all(w.states()["mailgun"] == "open" for w in workers))
        await asyncio.sleep(0.3)
        return await asyncio.gather(*(w.admit("mailgun") for w in workers for _ in range(4)))

    tickets = fleet.run(scenario())
    assert [t for t in tickets if t is not None] == [Ticket("mailgun", probe=True)]
    assert all(w.states()["mailgun"] == "half_open" for w in workers)


def test_the_probes_result_closes_or_reopens_for_everyone(fleet):
    a, b = (fleet.health(PROVIDERS, failures=1, recovery_s=0.2) for _ in range(2))

    async def probe(worker) -> Ticket:
        await asyncio.sleep(0.3)
        ticket = await worker.admit("mailgun")
        assert ticket is not None and ticket.probe
        return ticket

    async def scenario() -> None:
        a.failed(Ticket("mailgun"), transient())
        await settle(lambda: b.states()["mailgun"] == "open")
        ticket = await probe(b)
        b.failed(ticket, transient())
        await settle(lambda: a.states()["mailgun"] == "open")
        assert await a.admit("mailgun") is None, "a failed probe starts a new open period"
        ticket = await probe(a)
        a.succeeded(ticket)
        await settle(lambda: b.states()["mailgun"] == "closed")
        assert await b.admit("mailgun") == Ticket("mailgun")

    fleet.run(scenario())


def test_a_probe_whose_owner_vanished_is_claimed_again_after_its_lease(fleet):
    gone, other = (fleet.health(PROVIDERS, failures=1, recovery_s=0.1, lease_s=0.5) for _ in range(2))

    async def scenario() -> None:
        gone.failed(Ticket("mailgun"), transient())
        await asyncio.sleep(0.2)
        assert (await gone.admit("mailgun")).probe
        await settle(lambda: other.states()["mailgun"] == "half_open")
        assert await other.admit("mailgun") is None, "the lease is still held"
        await asyncio.sleep(0.6)
        ticket = await other.admit("mailgun")
        assert ticket is not None and ticket.probe

    fleet.run(scenario())


def test_a_probe_that_met_a_bad_recipient_hands_its_lease_back(fleet):
    a, b = (fleet.health(PROVIDERS, failures=1, recovery_s=0.1, lease_s=30) for _ in range(2))

    async def scenario() -> None:
        a.failed(Ticket("mailgun"), transient())
        await asyncio.sleep(0.2)
        ticket = await a.admit("mailgun")
        a.failed(ticket, PermanentError("mailgun", "bad recipient", status=400))
        await settle(lambda: b.states()["mailgun"] == "half_open")
        await settle(lambda: b._states["mailgun"].probe_owner == "")
        assert (await b.admit("mailgun")).probe

    fleet.run(scenario())


def test_a_429_throttles_the_provider_for_every_worker_without_opening_it(fleet):
    a, b = fleet.health(PROVIDERS, failures=1), fleet.health(PROVIDERS, failures=1)

    async def scenario() -> None:
        a.failed(Ticket("sendgrid"), ThrottledError("sendgrid", "429", retry_after=1.0))
        assert a.states()["sendgrid"] == "closed"
        assert await a.admit("sendgrid") is None
        await settle(lambda: b._throttled_until["sendgrid"] > 0)
        assert await b.admit("sendgrid") is None
        await asyncio.sleep(1.1)
        assert await b.admit("sendgrid") == Ticket("sendgrid")

    fleet.run(scenario())


def test_heartbeats_tell_each_worker_the_fleets_size(fleet):
    workers = [fleet.health(PROVIDERS) for _ in range(3)]

    async def scenario() -> None:
        beats = [asyncio.ensure_future(w.heartbeats()) for w in workers]
        await settle(lambda: all(w.fleet_size() == 3 for w in workers))
        for beat in beats:
            beat.cancel()

    assert workers[0].fleet_size() == 1
    fleet.run(scenario())
