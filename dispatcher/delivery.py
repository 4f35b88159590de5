"""The delivery policy: choose a provider, send, classify, fail over, retry on the ladder or dead-letter.

Plain asyncio code: `handle` turns one consumed record into the records to publish (events, a retry or
schedule record, a dead letter, ledger entries), so the Faust agent only wires topics to it. The ledger
and the fleet's provider health are handed in; only the `sending`/`sent` ledger entries are written
during the send itself, because they are what keeps a re-delivered record from being sent twice.
"""
import asyncio
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from dispatcher import metrics
from dispatcher.health import FleetHealth, Ticket
from dispatcher.jobs import MAX_REASON_CHARS, REQUEST_SCHEMA, RETRY_SCHEMA, Job, Source, job_from_record, mail_digest
from dispatcher.ledger import DEAD, FAILED, SENDING, SENT, DeliveryLedger, LedgerEntry
from dispatcher.ownership import Abandoned, Lease, Ownership
from dispatcher.ratelimit import RateLimits
from dispatcher.sender import NotStarted
from providers.base import ProviderAdapter, SendResult
from providers.errors import (
    AmbiguousError,
    PermanentError,
    ProviderError,
    ProviderFailure,
    ThrottledError,
    TransientError,
)
from schemas import codec, registry, topics
from schemas.events import accepted_event, encode_event, make_event, now_ms
from schemas.kafka.publishing import Output
from schemas.model import Mail
from schemas.validation import ForeignMailId, InvalidMail, check_mail
from schemas.vocabulary import IDEMPOTENCY_HEADER, DeadReason, EventType, FailureCause, Outcome

log = logging.getLogger("mercury.dispatcher")
# Kafka's default record limit is 1,000,000 bytes; a dead letter keeps room for its reason and position.
# Every mail that passes validation (MERCURY_MAX_MAIL_BYTES counts every field) fits whole, so its letter
# stays replayable; a broker set to take less refuses it, and the letter is then kept without its payload.
MAX_DEAD_PAYLOAD = 960_000
LEDGER_POLL_S = 0.1

Sender = Callable[[ProviderAdapter, Mail, Lease], Awaitable[SendResult]]


class Dispatcher:
    def __init__(
        self,
        services: list[ProviderAdapter],
        health: FleetHealth,
        ledger: DeliveryLedger,
        limits: RateLimits,
        send: Sender,
        retry_delays: tuple[float, ...],
        retry_ambiguous: bool,
        worker_id: str,
        rng: random.Random | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        self._services = {s.name: s for s in services}
        self._health = health
        self._ledger = ledger
        self._limits = limits
        self._send = send
        self._delays = retry_delays
        self._retry_ambiguous = retry_ambiguous
        self._worker = worker_id
        self._rng = rng or random.Random()
        self.ownership = ownership or Ownership()
        self._busy: dict[str, tuple[asyncio.Lock, int]] = {}
        self._sending: Counter[ProviderAdapter] = Counter()
        self._retired: set[ProviderAdapter] = set()

    @property
    def health(self) -> FleetHealth:
        return self._health

    def services(self) -> list[ProviderAdapter]:
        """The adapters mails are sent through now."""
        return list(self._services.values())

    def set_service(self, service: ProviderAdapter) -> None:
        """Add a provider, or replace the adapter of one; sends already under way finish on the old adapter."""
        self._retire(self._services.get(service.name))
        self._services[service.name] = service

    def drop_service(self, name: str) -> None:
        """Send no more mail through `name` (disabled or removed); sends under way finish."""
        self._retire(self._services.pop(name, None))

    def set_retry_delays(self, delays: tuple[float, ...]) -> None:
        """A new ladder for mails put on it from now on; at most as many levels as there are retry topics."""
        self._delays = delays

    def _retire(self, service: ProviderAdapter | None) -> None:
        """Close an adapter taken out of service once its last send has ended."""
        if service is None:
            return
        if self._sending[service]:
            self._retired.add(service)
        else:
            service.close()

    async def handle(self, payload: bytes | None, key: bytes | None, source: Source,
                     lease: Lease | None = None) -> list[Output]:
        """Never raises: a record it cannot use becomes a dead letter, an internal error a retry. A record whose
        lease closes before its send starts is abandoned (`lease.abandoned`): only the events of attempts already
        made are returned, and the record is left to the partition's next owner."""
        lease = lease or self.ownership.lease(source.topic, source.partition)
        try:
            name, record = codec.decode(payload)
            job = job_from_record(name, record, source)
        except codec.DecodeError as err:
            mail_id = key.decode(errors="replace") if key else _position(source)
            log.warning("malformed_record", extra={
                "topic": source.topic, "partition": source.partition, "offset": source.offset, "reason": str(err)})
            return self._dead(mail_id, DeadReason.MALFORMED, str(err), source, payload or b"", rejected=True)
        try:
            job.mail = check_mail(job.mail)
        except ForeignMailId as err:
            # The id may name another tenant's mail: the letter and events are filed under the record's position
            # instead, so they join no other mail's history, status or letters; the rejection names the sending
            # tenant, which alone reads it.
            return self._dead(_position(source), DeadReason.MALFORMED, str(err), source, payload, rejected=True,
                              tenant=job.mail.tenant)
        except InvalidMail as err:
            return self._dead(job.mail.id, DeadReason.MALFORMED, str(err), source, payload, rejected=True)
        attempts: list[Output] = []
        try:
            await lease.wait_until(job.due_at)
            if job.first_attempt and (hop := topics.schedule_hop((job.mail.send_at - now_ms()) / 1000)):
                return self._accepted(job) + self._schedule(job, hop)
            await lease.wait_until(job.mail.send_at)
            async with self._exclusive(job.mail.id):
                return self._accepted(job) + await self._deliver_once(job, lease, attempts)
        except Abandoned:
            lease.abandon()
            log.info("record_abandoned", extra={"mail": job.mail.id, "topic": source.topic,
                                                "partition": source.partition, "offset": source.offset,
                                                "attempts": len(attempts)})
            return attempts
        except Exception as err:  # a bug must not lose the mail: it goes back on the ladder, loudly
            log.exception("dispatch_error", extra={"mail": job.mail.id})
            return self._accepted(job) + attempts + self._retry(job, f"internal error: {type(err).__name__}",
                                                                spent=True)

    def _accepted(self, job: Job) -> list[Output]:
        """Mails from outside producers never passed the gateway, which records acceptance for its own."""
        if job.source.topic != topics.REQUESTS or job.mail.origin == "http":
            return []
        event = accepted_event(job.mail, self._worker, job.mail.created_at or job.source.timestamp_ms,
                               topic=job.source.topic)
        return [Output(topics.EVENTS, job.mail.id, encode_event(event))]

    def _schedule(self, job: Job, hop: str) -> list[Output]:
        """A mail not yet due waits on the schedule topics, so it holds up no other mail."""
        outputs = [Output(hop, job.mail.id, codec.encode(REQUEST_SCHEMA, job.mail.to_record()))]
        if job.source.topic == topics.REQUESTS:
            outputs.append(self._event(job.mail.id, EventType.SCHEDULED, send_at=job.mail.send_at))
        return outputs

    @asynccontextmanager
    async def _exclusive(self, mail_id: str) -> AsyncIterator[None]:
        """Two records of one mail on this worker are worked on one after the other, never side by side."""
        lock, users = self._busy.get(mail_id, (asyncio.Lock(), 0))
        self._busy[mail_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._busy[mail_id]
            if users == 1:
                del self._busy[mail_id]
            else:
                self._busy[mail_id] = (lock, users - 1)

    async def _deliver_once(self, job: Job, lease: Lease, attempts: list[Output]) -> list[Output]:
        await self._ledger.ready()
        outputs, go_on = await self._settle_previous(job)
        if not go_on:
            return outputs
        attempts.extend(outputs)
        return await self._deliver(job, lease, attempts)

    async def _settle_previous(self, job: Job) -> tuple[list[Output], bool]:
        """What the ledger says about earlier sends of this mail: skip it, wait for another worker's send to
        end, or report a send cut short by a dead worker as ambiguous and go on by the ambiguity policy."""
        mail = job.mail
        while (entry := self._ledger.lookup(mail.id)) is not None:
            if entry.digest and entry.digest != job.digest:
                return [self._conflict(mail.id, entry)], False
            if entry.state == SENT:
                return [self._duplicate(mail.id, entry.provider, f"already sent by {entry.worker}",
                                        message_id=entry.message_id)], False
            if entry.state == DEAD and mail.replayed_at <= entry.at:
                return [self._duplicate(mail.id, entry.provider, f"already dead-lettered by {entry.worker}")], False
            if entry.state != SENDING or entry.worker == self._ledger.instance:
                return [], True
            if entry.until > now_ms():
                await asyncio.sleep(LEDGER_POLL_S)
                continue
            log.warning("ambiguous_send", extra={"mail": mail.id, "provider": entry.provider, "worker": entry.worker})
            event = self._event(mail.id, EventType.ATTEMPT_FAILED, provider=entry.provider,
                                outcome=Outcome.AMBIGUOUS, worker=entry.worker,
                                detail=f"{entry.worker} stopped during the send; the provider may have accepted it")
            if not self._retry_ambiguous:
                return [event, *self._dead_job(job, DeadReason.AMBIGUOUS, f"{entry.provider}: send cut short")], False
            return [event], True
        return [], True

    async def _deliver(self, job: Job, lease: Lease, outputs: list[Output]) -> list[Output]:
        """Fail over until a provider accepts; `outputs` (the caller's) holds every attempt's events as they
        happen, so a record abandoned between two attempts still reports the attempts it made."""
        tried: set[str] = set()
        spent = False
        last_error = "no provider available"
        while (chosen := await self._choose(tried | job.excluded)) is not None:
            ticket, service = chosen
            provider = ticket.provider
            dispatched = self._event(job.mail.id, EventType.DISPATCHED, provider=provider, level=job.level)
            try:
                with self.ownership.sending(lease):
                    result, err = await self._attempt(service, job, lease)
            except Abandoned:
                self._health.release(ticket)
                self._limits.give_back(provider)
                raise
            tried.add(provider)
            outputs.append(dispatched)
            if err is None:
                self._health.succeeded(ticket)
                refused = {"refused_recipients": list(result.refused)} if result.refused else {}
                outputs.append(self._event(job.mail.id, EventType.SENT, provider=provider, outcome=Outcome.ACCEPTED,
                                           message_id=result.message_id, status=result.status,
                                           latency_ms=result.latency_ms, **refused))
                return list(outputs)
            self._health.failed(ticket, err)
            outputs.append(self._failure_event(job, err))
            if not lease.may_send:  # what happens next is the next owner's to decide, from the ledger
                raise Abandoned()
            last_error = f"{provider}: {err.detail}"
            spent = spent or not isinstance(err, ThrottledError)
            if isinstance(err, PermanentError):
                return outputs + self._dead_job(job, DeadReason.PERMANENT, last_error)
            if isinstance(err, AmbiguousError) and not self._retry_ambiguous:
                return outputs + self._dead_job(job, DeadReason.AMBIGUOUS, last_error)
            if isinstance(err, ProviderFailure):
                job.excluded.add(provider)
        if not lease.may_send:
            raise Abandoned()
        if self._services and job.excluded >= self._services.keys():
            return outputs + self._dead_job(job, DeadReason.NO_PROVIDER,
                                            f"every provider refused this mail: {last_error}")
        return outputs + self._retry(job, last_error, spent)

    async def _attempt(self, service: ProviderAdapter, job: Job,
                       lease: Lease) -> tuple[SendResult | None, ProviderError | None]:
        """One send through `service`, counted so that an adapter replaced meanwhile is closed only after it."""
        self._sending[service] += 1
        try:
            return await self._send_recorded(service, job, lease)
        finally:
            self._sent_through(service)

    async def _send_recorded(self, service: ProviderAdapter, job: Job,
                             lease: Lease) -> tuple[SendResult | None, ProviderError | None]:
        """One send between its two ledger entries, its failure classified; an adapter fault counts as a
        provider error, so the breaker and the mail's history stay right and nothing is lost. A send still
        waiting for a send slot when its lease closes never starts: its `failed` entry says so, and it raises
        Abandoned."""
        provider = service.name
        budget_ms = int((sum(service.timeout) + 1) * 1000)
        await self._ledger.record(job.mail.id, SENDING, provider, until=now_ms() + budget_ms, digest=job.digest)
        try:
            with metrics.SEND_LATENCY.labels(provider).time():
                result = await self._send(service, job.mail, lease)
        except NotStarted:
            await self._ledger.record(job.mail.id, FAILED, provider, digest=job.digest)
            raise Abandoned() from None
        except ProviderError as err:
            metrics.SENDS.labels(provider, str(err.outcome)).inc()
            await self._ledger.record(job.mail.id, FAILED, provider, digest=job.digest)
            return None, err
        except Exception as bug:
            log.exception("adapter_error", extra={"provider": provider, "mail": job.mail.id})
            metrics.SENDS.labels(provider, str(Outcome.TRANSIENT)).inc()
            await self._ledger.record(job.mail.id, FAILED, provider, digest=job.digest)
            return None, TransientError(provider, f"adapter error: {type(bug).__name__}", cause=FailureCause.PROVIDER)
        metrics.SENDS.labels(provider, str(Outcome.ACCEPTED)).inc()
        await self._ledger.record(job.mail.id, SENT, provider, result.message_id, digest=job.digest)
        return result, None

    def _sent_through(self, service: ProviderAdapter) -> None:
        self._sending[service] -= 1
        if not self._sending[service]:
            del self._sending[service]
            if service in self._retired:
                self._retired.discard(service)
                service.close()

    async def _choose(self, skip: set[str]) -> tuple[Ticket, ProviderAdapter] | None:
        """A random healthy provider not yet tried for this mail (a stateless policy: no worker keeps a rotation);
        when the only healthy ones are at their rate limit, wait for the first free send rather than spend an attempt.
        The adapter is taken once admitted, so a provider replaced meanwhile sends through its new one."""
        while True:
            candidates = [name for name in self._services if name not in skip]
            self._rng.shuffle(candidates)
            wait: float | None = None
            for name in candidates:
                if (delay := self._limits.try_take(name)) > 0:
                    wait = delay if wait is None else min(wait, delay)
                    continue
                if (ticket := await self._health.admit(name)) and (service := self._services.get(name)):
                    return ticket, service
                if ticket:
                    self._health.release(ticket)
                self._limits.give_back(name)
            if wait is None:
                return None
            await asyncio.sleep(wait)

    def _retry(self, job: Job, last_error: str, spent: bool) -> list[Output]:
        """Back on the ladder; a mail no provider could take (all open or throttled) waits at its level
        instead of climbing it, so a fleet-wide outage never dead-letters it."""
        level = job.level + 1 if spent and not job.first_attempt else job.level
        if level >= len(self._delays):
            return self._dead_job(job, DeadReason.EXHAUSTED,
                                  f"gave up after {len(self._delays)} retry levels: {last_error}")
        due_at = now_ms() + int(self._delays[level] * 1000)
        topic = topics.retry_topic(level)
        metrics.RETRIES.labels(str(level)).inc()
        return [
            Output(topic, job.mail.id, job.retry_record(level, due_at, last_error)),
            self._event(job.mail.id, EventType.RETRY_SCHEDULED, level=level, due_at=due_at,
                        delay_s=self._delays[level], reason=last_error),
        ]

    def _dead_job(self, job: Job, reason: DeadReason, detail: str) -> list[Output]:
        """A decoded mail given up on: its letter carries it as a plain request, ready to replay."""
        dead_at = now_ms()
        letter = self._dead(job.mail.id, reason, detail, job.source,
                            codec.encode(REQUEST_SCHEMA, job.mail.to_record()), dead_at=dead_at)
        # One timestamp for both: a replay stamped after the letter is after the ledger entry too.
        return [*letter, self._ledger.output(job.mail.id, DEAD, at=dead_at, digest=job.digest)]

    def _dead(self, mail_id: str, reason: DeadReason, detail: str, source: Source, payload: bytes,
              rejected: bool = False, dead_at: int | None = None, tenant: str | None = None) -> list[Output]:
        outputs = [self._letter(mail_id, reason, detail, source, payload, dead_at or now_ms())]
        metrics.DEAD_LETTERS.labels(str(reason)).inc()
        if rejected:
            named = {} if tenant is None else {"tenant": tenant}
            outputs.append(self._event(mail_id, EventType.REJECTED, reason=detail, topic=source.topic,
                                       partition=source.partition, offset=source.offset, **named))
        outputs.append(self._event(mail_id, EventType.DEAD_LETTERED, outcome=str(reason), reason=detail))
        return outputs

    @staticmethod
    def _letter(mail_id: str, reason: DeadReason, detail: str, source: Source, payload: bytes,
                dead_at: int) -> Output:
        if len(payload) > MAX_DEAD_PAYLOAD:
            # A letter must fit on the topic whatever was sent; a record this large is kept in part.
            detail = f"{detail} (payload of {len(payload)} bytes cut to {MAX_DEAD_PAYLOAD})"
            payload = payload[:MAX_DEAD_PAYLOAD]
        return Output(topics.DEAD, mail_id, codec.encode(registry.DEAD_LETTER, {
            "mail_id": mail_id,
            "reason": detail[:MAX_REASON_CHARS],
            "outcome": str(reason),
            "source_topic": source.topic,
            "source_partition": source.partition,
            "source_offset": source.offset,
            "payload": payload,
            "dead_at": dead_at,
        }))

    def instead_of_refused(self, refused: list[tuple[Output, Exception]], source: Source) -> list[Output]:
        """What stands in for records the broker refused for good, so the mail ends somewhere visible and the
        partition moves on: a mail's retry or schedule record becomes its dead letter (the mail as a plain
        request); a letter is kept without its payload. Events, ledger entries and a letter refused even without
        its payload are small and bounded: one refused all the same is logged, not replaced."""
        outputs: list[Output] = []
        for output, err in refused:
            log.error("record_refused",
                      extra={"topic": output.topic, "mail": output.key, "bytes": len(output.value), "error": str(err)})
            if output.topic == topics.DEAD and (letter := codec.decode(output.value)[1])["payload"]:
                outputs.append(self._letter(
                    letter["mail_id"], DeadReason(letter["outcome"]),
                    f"{letter['reason']} (payload of {len(letter['payload'])} bytes dropped: {err})",
                    Source(letter["source_topic"], letter["source_partition"], letter["source_offset"], 0), b"",
                    letter["dead_at"]))
            elif output.topic.startswith((topics.RETRY_PREFIX, topics.SCHEDULE_PREFIX)):
                name, record = codec.decode(output.value)
                mail = record["mail"] if name == RETRY_SCHEMA else record
                dead_at = now_ms()
                outputs += self._dead(output.key, DeadReason.PERMANENT, f"the {output.topic} record was refused: {err}",
                                      source, codec.encode(REQUEST_SCHEMA, mail), dead_at=dead_at)
                digest = mail_digest(Mail.from_record(mail))
                outputs.append(self._ledger.output(output.key, DEAD, at=dead_at, digest=digest))
        return outputs

    def _conflict(self, mail_id: str, entry: LedgerEntry) -> Output:
        """Another mail under an id already in use: the gateway cannot always tell (two requests at once, or
        ClickHouse unable to answer), so the record is refused here, visibly, and the first mail is untouched."""
        log.warning("mail_id_conflict", extra={"mail": mail_id, "first_state": entry.state})
        return self._event(mail_id, EventType.REJECTED, reason=f"{IDEMPOTENCY_HEADER}: mail {mail_id} was already "
                           "accepted with a different request; this one was not sent", field=IDEMPOTENCY_HEADER)

    def _duplicate(self, mail_id: str, provider: str, reason: str, **detail: object) -> Output:
        log.info("duplicate_skipped", extra={"mail": mail_id, "reason": reason})
        metrics.DUPLICATES.inc()
        return self._event(mail_id, EventType.DUPLICATE, provider=provider or None, reason=reason, **detail)

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


def _position(source: Source) -> str:
    """What a record with no id of its own (or none it may use) is filed under: where it was read."""
    return f"{source.topic}:{source.partition}:{source.offset}"
