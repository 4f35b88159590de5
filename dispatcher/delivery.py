"""The delivery policy: choose a provider, send, classify, fail over, retry on the ladder or dead-letter.

Plain asyncio code with no Kafka in it: `handle` turns one consumed record into the records to publish
(events, a retry record or a dead letter), so the Faust agent only wires topics to it.
"""
import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dispatcher.breakers import BreakerBoard
from dispatcher.jobs import Job, Source, job_from_record
from providers.base import MailService, SendResult
from providers.errors import AmbiguousError, PermanentError, ProviderError, ProviderFailure, TransientError
from schemas import codec, topics
from schemas.events import accepted_event, encode_event, make_event, now_ms
from schemas.model import Mail
from schemas.validation import InvalidMail, check_mail
from schemas.vocabulary import DeadReason, EventType, FailureCause

log = logging.getLogger("mercury.dispatcher")
# Kafka's default record limit is 1,000,000 bytes; a dead letter keeps room for its reason and position.
MAX_DEAD_PAYLOAD = 512 * 1024

Sender = Callable[[MailService, Mail], Awaitable[SendResult]]


@dataclass(frozen=True)
class Output:
    topic: str
    key: str
    value: bytes


class Dispatcher:
    def __init__(
        self,
        services: list[MailService],
        board: BreakerBoard,
        send: Sender,
        retry_delays: tuple[float, ...],
        retry_ambiguous: bool,
        worker_id: str,
        rng: random.Random | None = None,
    ) -> None:
        self._services = {s.name: s for s in services}
        self._board = board
        self._send = send
        self._delays = retry_delays
        self._retry_ambiguous = retry_ambiguous
        self._worker = worker_id
        self._rng = rng or random.Random()

    @property
    def breakers(self) -> BreakerBoard:
        return self._board

    async def handle(self, payload: bytes | None, key: bytes | None, source: Source) -> list[Output]:
        """Never raises: a record it cannot use becomes a dead letter, an internal error a retry."""
        try:
            name, record = codec.decode(payload)
            job = job_from_record(name, record, source)
        except codec.DecodeError as err:
            mail_id = key.decode(errors="replace") if key else f"{source.topic}:{source.partition}:{source.offset}"
            log.warning("event=malformed_record topic=%s partition=%d offset=%d reason=%s",
                        source.topic, source.partition, source.offset, err)
            return self._dead(mail_id, DeadReason.MALFORMED, str(err), source, payload or b"", rejected=True)
        try:
            job.mail = check_mail(job.mail)
        except InvalidMail as err:
            return self._dead(job.mail.id, DeadReason.MALFORMED, str(err), source, payload, rejected=True)
        outputs = self._accepted(job)
        wait_s = (job.due_at - now_ms()) / 1000
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        try:
            return outputs + await self._deliver(job)
        except Exception as err:  # a bug must not lose the mail: it goes back on the ladder, loudly
            log.exception("event=dispatch_error mail=%s", job.mail.id)
            return outputs + self._retry(job, f"internal error: {err!r}")

    def _accepted(self, job: Job) -> list[Output]:
        """Mails from outside producers never passed the gateway, which records acceptance for its own."""
        if not job.first_attempt or job.mail.origin == "http":
            return []
        event = accepted_event(job.mail, self._worker, job.mail.created_at or job.source.timestamp_ms,
                               topic=job.source.topic)
        return [Output(topics.EVENTS, job.mail.id, encode_event(event))]

    async def _deliver(self, job: Job) -> list[Output]:
        outputs: list[Output] = []
        tried: set[str] = set()
        last_error = "no provider available"
        while (provider := self._choose(tried | job.excluded)) is not None:
            tried.add(provider)
            outputs.append(self._event(job.mail.id, EventType.DISPATCHED, provider=provider, level=job.level))
            result, err = await self._attempt(provider, job)
            if err is None:
                self._board[provider].succeeded()
                outputs.append(self._event(job.mail.id, EventType.SENT, provider=provider, outcome="accepted",
                                           message_id=result.message_id, status=result.status,
                                           latency_ms=result.latency_ms))
                return outputs
            self._board[provider].failed(err)
            outputs.append(self._failure_event(job, err))
            last_error = f"{provider}: {err.detail}"
            if isinstance(err, PermanentError):
                return outputs + self._dead_job(job, DeadReason.PERMANENT, last_error)
            if isinstance(err, AmbiguousError) and not self._retry_ambiguous:
                return outputs + self._dead_job(job, DeadReason.AMBIGUOUS, last_error)
            if isinstance(err, ProviderFailure):
                job.excluded.add(provider)
        if job.excluded >= self._services.keys():
            return outputs + self._dead_job(job, DeadReason.NO_PROVIDER, f"every provider refused this mail: {last_error}")
        return outputs + self._retry(job, last_error)

    async def _attempt(self, provider: str, job: Job) -> tuple[SendResult | None, ProviderError | None]:
        """One send, its failure classified; an adapter fault counts as a provider error, so the breaker
        and the mail's history stay right and nothing is lost."""
        try:
            return await self._send(self._services[provider], job.mail), None
        except ProviderError as err:
            return None, err
        except Exception as bug:
            log.exception("event=adapter_error provider=%s mail=%s", provider, job.mail.id)
            return None, TransientError(provider, f"adapter error: {bug!r}", cause=FailureCause.PROVIDER)

    def _choose(self, skip: set[str]) -> str | None:
        """A random healthy provider not yet tried for this mail (the seed's stateless policy)."""
        candidates = [name for name in self._services if name not in skip]
        self._rng.shuffle(candidates)
        return next((name for name in candidates if self._board[name].admit()), None)

    def _retry(self, job: Job, last_error: str) -> list[Output]:
        level = job.level if job.first_attempt else job.level + 1
        if level >= len(self._delays):
            return self._dead_job(job, DeadReason.EXHAUSTED, f"gave up after {len(self._delays)} retry levels: {last_error}")
        due_at = now_ms() + int(self._delays[level] * 1000)
        topic = topics.retry_topic(level)
        return [
            Output(topic, job.mail.id, job.retry_record(level, due_at, last_error)),
            self._event(job.mail.id, EventType.RETRY_SCHEDULED, level=level, due_at=due_at,
                        delay_s=self._delays[level], reason=last_error),
        ]

    def _dead_job(self, job: Job, reason: DeadReason, detail: str) -> list[Output]:
        """A decoded mail given up on: its letter carries it as a plain request, ready to replay."""
        return self._dead(job.mail.id, reason, detail, job.source,
                          codec.encode("mercury.MailRequest", job.mail.to_record()))

    def _dead(self, mail_id: str, reason: DeadReason, detail: str, source: Source, payload: bytes,
              rejected: bool = False) -> list[Output]:
        if len(payload) > MAX_DEAD_PAYLOAD:
            # A letter must fit on the topic whatever was sent; a record this large is kept in part.
            detail = f"{detail} (payload of {len(payload)} bytes cut to {MAX_DEAD_PAYLOAD})"
            payload = payload[:MAX_DEAD_PAYLOAD]
        letter = codec.encode("mercury.DeadLetter", {
            "mail_id": mail_id,
            "reason": detail,
            "outcome": str(reason),
            "source_topic": source.topic,
            "source_partition": source.partition,
            "source_offset": source.offset,
            "payload": payload,
            "dead_at": now_ms(),
        })
        outputs = [Output(topics.DEAD, mail_id, letter)]
        if rejected:
            outputs.append(self._event(mail_id, EventType.REJECTED, reason=detail, topic=source.topic,
                                       partition=source.partition, offset=source.offset))
        outputs.append(self._event(mail_id, EventType.DEAD_LETTERED, outcome=str(reason), reason=detail))
        return outputs

    def _failure_event(self, job: Job, err: ProviderError) -> Output:
        detail: dict[str, object] = {"status": err.status, "detail": err.detail}
        if isinstance(err, TransientError):
            detail["cause"] = str(err.cause)
        return self._event(job.mail.id, EventType.ATTEMPT_FAILED, provider=err.provider,
                           outcome=str(err.outcome), **detail)

    def _event(self, mail_id: str, event: EventType, provider: str | None = None, outcome: str | None = None,
               **detail: object) -> Output:
        record = make_event(mail_id, event, self._worker, provider=provider, outcome=outcome, **detail)
        return Output(topics.EVENTS, mail_id, encode_event(record))

