"""The delivery policy with no broker and no provider server: shared state on an in-memory log, sends scripted.

Fast checks of each decision `Dispatcher.handle` makes; tests/dispatcher/test_delivery.py makes the same kind of
checks against the real broker and the sandbox over HTTP.
"""
import asyncio
import random
import time
import uuid
from collections.abc import Callable

from memory_log import MemoryLog

from dispatcher.delivery import Dispatcher
from dispatcher.health import FleetHealth
from dispatcher.jobs import Source
from dispatcher.ledger import DEAD, SENDING, SENT, DeliveryLedger
from dispatcher.ownership import Lease
from dispatcher.ratelimit import RateLimits
from providers.base import ProviderAdapter, SendResult
from providers.config import load_providers
from providers.errors import AmbiguousError, PermanentError, ProviderError, TransientError
from schemas import codec, registry, topics
from schemas.kafka.producer import Output
from schemas.model import Mail
from schemas.vocabulary import IDEMPOTENCY_HEADER, FailureCause

DELAYS = (5.0, 30.0)
# What a provider does with one send: accept it, or fail it with an error naming the provider.
Reply = Callable[[str], SendResult | ProviderError]


def accept(provider: str) -> SendResult:
    return SendResult(provider, f"<{uuid.uuid4().hex}@{provider}>", 200, 12.0)


def transient(provider: str) -> ProviderError:
    return TransientError(provider, "503 service unavailable", cause=FailureCause.PROVIDER, status=503)


def permanent(provider: str) -> ProviderError:
    return PermanentError(provider, "recipient address rejected", status=400)


def ambiguous(provider: str) -> ProviderError:
    return AmbiguousError(provider, "read timed out")


class ScriptedSends:
    """Answers the sends in order from `replies`, whichever provider each goes to; records who was called."""

    def __init__(self, *replies: Reply) -> None:
        self._replies = list(replies)
        self.calls: list[str] = []

    async def __call__(self, service: ProviderAdapter, mail: Mail, lease: Lease) -> SendResult:
        self.calls.append(service.name)
        answer = self._replies.pop(0)(service.name)
        if isinstance(answer, ProviderError):
            raise answer
        return answer


class Worker:
    """One dispatcher whose health board and ledger follow `log`, as a worker's replicas follow the broker."""

    def __init__(self, log: MemoryLog, sends: ScriptedSends, providers: str = "mailgun,sendgrid",
                 retry_ambiguous: bool = True, failures: int = 3) -> None:
        self.log = log
        self.sends = sends
        instance = f"worker-{uuid.uuid4().hex[:6]}"
        services = load_providers({"MERCURY_PROVIDERS": providers, "MAILGUN_BASE_URL": "http://127.0.0.1:9",
                                   "SENDGRID_BASE_URL": "http://127.0.0.1:9"})
        self.health = FleetHealth([s.name for s in services], instance, failures, 30, 5, log.publish)
        self.ledger = DeliveryLedger(instance, log.publish, 900)
        log.follow(topics.HEALTH, self.health.apply)
        log.follow(topics.LEDGER, self.ledger.apply)
        self.dispatcher = Dispatcher(services, self.health, self.ledger, RateLimits({}, self.health.fleet_size), sends,
                                     DELAYS, retry_ambiguous, instance, random.Random(7))

    async def handle(self, payload: bytes, offset: int = 1) -> list[Output]:
        """What the worker makes of one record, published as the app publishes it."""
        outputs = await self.dispatcher.handle(payload, None, Source(topics.REQUESTS, 0, offset, 0))
        await self.log.publish(outputs)
        await settle()
        return outputs


async def settle() -> None:
    """Let what is under way reach every follower: a health change is published in the background, and the log
    hands records over on a later turn of the loop."""
    for _ in range(10):
        await asyncio.sleep(0)


def mail_record(mail_id: str | None = None, subject: str = "hello") -> bytes:
    return codec.encode(registry.MAIL_REQUEST, {
        "id": mail_id or uuid.uuid4().hex, "sender": "alice@example.com", "recipients": ["bob@example.com"],
        "subject": subject, "content": "hi", "created_at": int(time.time() * 1000), "origin": "http"})


def records(outputs: list[Output], topic: str) -> list[dict]:
    return [codec.decode(o.value)[1] for o in outputs if o.topic == topic]


def kinds(outputs: list[Output]) -> list[str]:
    return [event["event"] for event in records(outputs, topics.EVENTS)]


def states(log: MemoryLog, mail_id: str) -> list[str]:
    return [entry["state"] for entry in records(log.records[topics.LEDGER], topics.LEDGER)
            if entry["mail_id"] == mail_id]


def test_an_accepted_mail_is_sent_once_and_a_redelivered_record_is_a_duplicate():
    async def scenario() -> None:
        log, sends = MemoryLog(), ScriptedSends(accept, accept)
        worker = Worker(log, sends)
        payload = mail_record()
        mail_id = codec.decode(payload)[1]["id"]
        assert kinds(await worker.handle(payload)) == ["dispatched", "sent"]
        assert states(log, mail_id) == [SENDING, SENT]
        assert kinds(await worker.handle(payload, offset=2)) == ["duplicate"]
        assert len(sends.calls) == 1

    asyncio.run(scenario())


def test_a_transient_failure_fails_over_to_the_other_provider():
    async def scenario() -> None:
        sends = ScriptedSends(transient, accept)
        outputs = await Worker(MemoryLog(), sends).handle(mail_record())
        assert kinds(outputs) == ["dispatched", "attempt_failed", "dispatched", "sent"]
        assert sorted(sends.calls) == ["mailgun", "sendgrid"]
        assert records(outputs, topics.EVENTS)[-1]["provider"] == sends.calls[1]

    asyncio.run(scenario())


def test_a_permanent_refusal_is_dead_lettered_without_trying_another_provider():
    async def scenario() -> None:
        log, sends = MemoryLog(), ScriptedSends(permanent)
        payload = mail_record()
        outputs = await Worker(log, sends).handle(payload)
        assert kinds(outputs) == ["dispatched", "attempt_failed", "dead_lettered"]
        [letter] = records(outputs, topics.DEAD)
        assert letter["outcome"] == "permanent" and "recipient address rejected" in letter["reason"]
        assert codec.decode(letter["payload"])[1]["id"] == codec.decode(payload)[1]["id"]  # replayable
        assert len(sends.calls) == 1 and states(log, letter["mail_id"])[-1] == DEAD

    asyncio.run(scenario())


def test_a_mail_every_provider_failed_waits_on_the_first_retry_level():
    async def scenario() -> None:
        sends = ScriptedSends(transient, transient)
        outputs = await Worker(MemoryLog(), sends).handle(mail_record())
        assert kinds(outputs) == ["dispatched", "attempt_failed", "dispatched", "attempt_failed", "retry_scheduled"]
        [retry] = records(outputs, topics.retry_topic(0))
        assert retry["level"] == 0 and "503" in retry["last_error"]
        assert not records(outputs, topics.DEAD)

    asyncio.run(scenario())


def test_an_ambiguous_send_is_dead_lettered_when_ambiguity_must_not_be_retried():
    async def scenario() -> None:
        sends = ScriptedSends(ambiguous)
        outputs = await Worker(MemoryLog(), sends, retry_ambiguous=False).handle(mail_record())
        [letter] = records(outputs, topics.DEAD)
        assert letter["outcome"] == "ambiguous" and len(sends.calls) == 1

    asyncio.run(scenario())


def test_another_mail_under_an_id_already_sent_is_refused_and_not_sent():
    async def scenario() -> None:
        sends = ScriptedSends(accept, accept)
        worker = Worker(MemoryLog(), sends)
        mail_id = uuid.uuid4().hex
        await worker.handle(mail_record(mail_id, subject="first"))
        outputs = await worker.handle(mail_record(mail_id, subject="second"), offset=2)
        [event] = records(outputs, topics.EVENTS)
        assert event["event"] == "rejected" and IDEMPOTENCY_HEADER in event["blob"]
        assert len(sends.calls) == 1

    asyncio.run(scenario())


def test_a_record_that_is_not_avro_is_dead_lettered_as_malformed_and_reported_rejected():
    async def scenario() -> None:
        sends = ScriptedSends()
        outputs = await Worker(MemoryLog(), sends).handle(b"not avro at all")
        assert kinds(outputs) == ["rejected", "dead_lettered"]
        assert records(outputs, topics.DEAD)[0]["outcome"] == "malformed" and not sends.calls

    asyncio.run(scenario())


def test_a_breaker_one_worker_opens_keeps_the_other_worker_off_the_provider():
    async def scenario() -> None:
        log = MemoryLog()
        first = Worker(log, ScriptedSends(transient, transient), providers="mailgun", failures=2)
        other_sends = ScriptedSends()
        other = Worker(log, other_sends, providers="mailgun", failures=2)
        for offset in (1, 2):
            await first.handle(mail_record(), offset)
        assert other.health.states()["mailgun"] == "open"
        outputs = await other.handle(mail_record(), offset=3)
        assert kinds(outputs) == ["retry_scheduled"] and not other_sends.calls

    asyncio.run(scenario())
