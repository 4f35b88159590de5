"""Accepting or rejecting a mail, the same way for the single mail route and the batch route.

A mail is accepted only once the broker acknowledged its record; a refused one is recorded as a `rejected`
event so that "was it discarded at validation?" has an answer. A mail with an idempotency key is checked in
ClickHouse first: a retry gets the first answer again and publishes nothing, another body under the key is
refused, and while ClickHouse cannot answer nothing is published (see ingest.mails.idempotency).
"""
import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from clickhouse_driver.errors import Error as ClickHouseError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from analytics.store import MailStore
from ingest import metrics
from ingest.api_root import API
from ingest.errors import status_for
from ingest.mails.idempotency import (
    HEADER,
    KEY_CHECK_RETRY_S,
    KeyReused,
    KeyUnchecked,
    RecentKeys,
    legacy_mail_id_for,
)
from ingest.responses import RETRY_AFTER_S, json_response
from schemas import codec, registry, topics
from schemas.events import accepted_event, encode_event, make_event
from schemas.kafka.producer import AsyncProducer, BrokerUnavailable, MaybeWritten, Output
from schemas.model import Mail
from schemas.validation import InvalidMail
from schemas.vocabulary import EventType

log = logging.getLogger("mercury.ingest")
REPLAYED_HEADER = "Idempotent-Replayed"
# A timeout may hide a write: the truth, and what makes a retry safe (the dispatchers drop a second copy of a
# mail id within their ledger window, and an Idempotency-Key gives the retry the same id; so does a batch item's
# idempotency_key).
_MAYBE_ACCEPTED = ("the mail queue did not confirm the mail in time: it may or may not have been accepted. Retry "
                   f"soon with the same {HEADER} header to be safe (the dispatchers send one mail id once within "
                   "their ledger window, 15 minutes by default); without one, a retry may send the mail twice")
_NOT_ACCEPTED = "the mail queue is unavailable; nothing was accepted, retry later"
_KEY_UNCHECKED = (f"the {HEADER} cannot be checked now (the mail history is unavailable); nothing was accepted, "
                  "retry later")


@dataclass(frozen=True)
class Answer:
    """What one mail's request is answered: the single route sends it as it is, the batch route as one item."""

    status: int
    body: dict[str, object]
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        return json_response(self.body, self.status, self.headers or None)

    @property
    def retry_after(self) -> str | None:
        """Seconds to wait before retrying, for an answer that is a moment's unavailability; else None."""
        return self.headers.get("Retry-After", RETRY_AFTER_S if self.status == 503 else None)


@dataclass(frozen=True)
class Keyed:
    """A valid mail under an idempotency key; its id is the one the key stands for (ingest.mails.idempotency). `field`
    names where the key was given, `body` is what a refusal records and `digest` what a retry must match."""

    key: str
    mail: Mail
    digest: str
    body: bytes
    rejection_id: str
    field: str = HEADER


def _unaccepted(mail: Mail, failure: BrokerUnavailable) -> Answer:
    """503: a timeout may hide a write, so a mail the broker may have is not called unaccepted."""
    if isinstance(failure, MaybeWritten):
        log.warning("mail_maybe_accepted", extra={"mail": mail.id, "error": str(failure)})
        return refusal(503, _MAYBE_ACCEPTED, mail_id=mail.id, accepted="unknown")
    log.warning("mail_not_accepted", extra={"mail": mail.id, "error": str(failure)})
    return refusal(503, _NOT_ACCEPTED, accepted=False)


def refusal(status: int, message: str, headers: dict[str, str] | None = None, **extra: object) -> Answer:
    return Answer(status, {"error": message, **extra}, headers or {})


def mail_url(mail_id: str) -> str:
    """Percent-encoded: an id from an outside producer or a client's path may hold any character, and a header
    holds only Latin-1."""
    return f"{API}/mails/{quote(mail_id, safe='')}"


def accepted(mail: Mail, replayed: bool = False) -> Answer:
    """The 202 answer; a replay gets exactly the first answer's body and headers, marked as a replay."""
    url = mail_url(mail.id)
    body: dict[str, object] = {"id": mail.id, "status": "accepted", "url": url}
    if mail.send_at:
        body["send_at"] = mail.send_at
    headers = {"Location": url, "MailId": mail.id}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    return Answer(202, body, headers)


class Acceptor:
    """Publishes accepted mails and records rejected ones; remembers the keys it accepted lately so that most
    retries skip ClickHouse. Only the event loop thread calls it."""

    def __init__(self, store: Callable[[], MailStore], recent: RecentKeys | None = None) -> None:
        self._store = store
        self._recent = recent or RecentKeys()

    async def reject(self, producer: AsyncProducer, mail_id: str, err: InvalidMail, body: bytes, tenant: str,
                     **detail: object) -> Answer:
        """Record the rejection, then answer 4xx. The event names the tenant: the request never became a mail,
        so nothing else ties it to the tenant's reads. A broker that does not take the event is logged."""
        event = make_event(
            mail_id, EventType.REJECTED, "ingest", reason=str(err), field=err.field, tenant=tenant,
            body=body[:1024].decode(errors="replace"), **detail,
        )
        try:
            await producer.send(topics.EVENTS, mail_id, encode_event(event))
        except BrokerUnavailable as exc:
            log.error("rejected_event_unrecorded", extra={"mail": mail_id, "error": str(exc)})
        status = status_for(err)
        metrics.MAILS_REJECTED.labels(str(status)).inc()
        return refusal(status, str(err), field=err.field, mail_id=mail_id)

    async def accept_all(self, producer: AsyncProducer,
                         mails: Sequence[tuple[Mail, dict[str, object]]]) -> list[Answer]:
        """For each mail, 202 once the broker has it and 503 when it may not; each mail's detail goes into its
        acceptance record. The mails are published together, then the acceptance records of those taken."""
        requests = [Output(topics.REQUESTS, mail.id, codec.encode(registry.MAIL_REQUEST, mail.to_record()))
                    for mail, _ in mails]
        failures = await producer.send_all(requests)
        answers = [accepted(mail) if failure is None else _unaccepted(mail, failure)
                   for (mail, _), failure in zip(mails, failures)]
        taken = [(mail, detail) for (mail, detail), failure in zip(mails, failures) if failure is None]
        acceptances = [Output(topics.EVENTS, mail.id, encode_event(accepted_event(mail, "ingest", **detail)))
                       for mail, detail in taken]
        unrecorded = await producer.send_all(acceptances)
        for (mail, _), failure in zip(taken, unrecorded):
            if failure is not None:
                # The mail is queued and will be delivered; only its acceptance record is missing.
                log.error("accepted_event_unrecorded", extra={"mail": mail.id, "error": str(failure)})
        metrics.MAILS_ACCEPTED.inc(len(taken))
        return answers

    async def accept_keyed(self, producer: AsyncProducer, keyed: Sequence[Keyed]) -> list[Answer]:
        """Each mail once per key: a retry gets the first answer again and publishes nothing, another body under
        the key is refused (422), and all are refused with 503 while ClickHouse cannot say (one lookup for all)."""
        try:
            found = await self._recorded(keyed)
        except KeyUnchecked:
            return [refusal(503, _KEY_UNCHECKED, {"Retry-After": KEY_CHECK_RETRY_S}) for _ in keyed]
        answers: list[Answer | None] = [None] * len(keyed)
        fresh: list[tuple[int, Keyed, Mail]] = []
        reused: list[tuple[int, Keyed, Mail]] = []
        for position, (item, (mail, recorded)) in enumerate(zip(keyed, found)):
            if recorded is None:
                fresh.append((position, item, mail))
            elif recorded == item.digest:
                log.info("idempotent_replay", extra={"mail": mail.id})
                answers[position] = accepted(mail, replayed=True)
            else:
                reused.append((position, item, mail))
        published, refused = await asyncio.gather(
            self.accept_all(producer, [(mail, {"idempotency_key": item.key, "body_sha256": item.digest})
                                       for _, item, mail in fresh]),
            asyncio.gather(*(self.reject(producer, item.rejection_id, KeyReused(
                item.field, f"{item.key!r} was used for a different request (mail {mail.id})"), item.body, mail.tenant,
                idempotency_key=item.key) for _, item, mail in reused)))
        for (position, item, mail), answer in zip(fresh, published):
            if answer.status == 202:
                self._recent.put(mail.id, mail.id, item.digest)
            answers[position] = answer
        for (position, _, _), answer in zip(reused, refused):
            answers[position] = answer
        return answers

    async def _recorded(self, keyed: Sequence[Keyed]) -> list[tuple[Mail, str | None]]:
        """Each key's mail as it was accepted and its body digest (None for a new key); raises KeyUnchecked. A key
        first used before ids carried their tenant stands for its earlier id. Remembered by mail id, which the
        tenant is part of; publishing again would be safe only within the dispatchers' ledger window, and a
        client's retry may come later, so what is not remembered is looked up."""
        candidates = [(item.mail, replace(item.mail, id=legacy_mail_id_for(item.key, item.mail.tenant)))
                      for item in keyed]
        digests = {mail.id: seen[1] for pair in candidates for mail in pair
                   if (seen := self._recent.get(mail.id)) is not None}
        unknown: dict[str, set[str]] = {}
        for mail in (mail for pair in candidates for mail in pair if mail.id not in digests):
            unknown.setdefault(mail.tenant, set()).add(mail.id)
        for tenant, ids in unknown.items():
            for mail_id, detail in (await self._details(ids, tenant)).items():
                digests[mail_id] = str(detail.get("body_sha256", ""))
                self._recent.put(mail_id, mail_id, digests[mail_id])
        found = []
        for mail, earlier in candidates:
            if mail.id not in digests and earlier.id != mail.id and earlier.id in digests:
                found.append((earlier, digests[earlier.id]))
            else:
                found.append((mail, digests.get(mail.id)))
        return found

    async def _details(self, mail_ids: set[str], tenant: str) -> dict[str, dict]:
        try:
            return await run_in_threadpool(lambda: self._store().accepted_details(mail_ids, tenant=tenant))
        except (ClickHouseError, EOFError, OSError) as err:
            log.warning("idempotency_lookup_failed", extra={"mails": len(mail_ids), "error": repr(err)})
            raise KeyUnchecked() from err
