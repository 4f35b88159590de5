"""The delivery ledger: a durable record of each mail's latest send, so no mail is sent twice.

Before a send the worker records `sending` (with the time by which the send will have ended), after it
`sent` or `failed`; giving up records `dead`. Every worker follows the compacted ledger topic, and before
it works on partitions it was just given it reads the ledger up to a barrier, so a record re-delivered
after a crash or a rebalance meets what the previous owner wrote. What remains is one window: the
provider accepted, and the worker died before `sent` was written. The next owner then finds a `sending`
whose time has passed, and reports that attempt as `ambiguous` before it decides what to do.
"""
import asyncio
import logging
from dataclasses import dataclass

from schemas import codec, topics
from schemas.events import now_ms
from schemas.publishing import Output
from schemas.replica import Publish, TopicReplica

log = logging.getLogger("mercury.dispatcher.ledger")
SCHEMA = "mercury.LedgerEntry"
SENDING, SENT, FAILED, DEAD = "sending", "sent", "failed", "dead"
PRUNE_EVERY = 10_000


@dataclass(frozen=True)
class LedgerEntry:
    mail_id: str
    state: str
    worker: str
    provider: str
    message_id: str
    until: int
    at: int


class DeliveryLedger:
    def __init__(self, instance: str, publish: Publish, retention_s: float, topic: str = topics.LEDGER) -> None:
        self.instance = instance
        self.topic = topic
        self._publish = publish
        self._retention_ms = int(retention_s * 1000)
        self._entries: dict[str, LedgerEntry] = {}
        self._applied = 0
        self._replica: TopicReplica | None = None
        self._barrier: asyncio.Future | None = None

    def follow(self, replica: TopicReplica) -> None:
        self._replica = replica

    def refresh(self) -> None:
        """New partitions were assigned: the next `ready()` reads the ledger up to a fresh barrier."""
        self._barrier = None

    async def ready(self) -> None:
        if self._replica is None:
            return
        if self._barrier is None:
            self._barrier = asyncio.ensure_future(self._replica.caught_up())
        await asyncio.shield(self._barrier)

    def lookup(self, mail_id: str) -> LedgerEntry | None:
        return self._entries.get(mail_id)

    async def record(self, mail_id: str, state: str, provider: str = "", message_id: str = "", until: int = 0) -> None:
        """Write an entry and return once the broker acknowledged it."""
        await self._publish([self.output(mail_id, state, provider, message_id, until)])

    def output(self, mail_id: str, state: str, provider: str = "", message_id: str = "", until: int = 0,
               at: int | None = None) -> Output:
        """An entry as a record to publish with the mail's other outputs; this worker sees it at once."""
        entry = LedgerEntry(mail_id, state, self.instance, provider, message_id, until, at or now_ms())
        self._entries[mail_id] = entry
        return Output(self.topic, mail_id, codec.encode(SCHEMA, entry.__dict__))

    def apply(self, key: str, value: bytes) -> None:
        _, record = codec.decode(value)
        self._entries[record["mail_id"]] = LedgerEntry(**record)
        self._applied += 1
        if self._applied % PRUNE_EVERY == 0:
            self._prune()

    def _prune(self) -> None:
        """Forget mails older than the retention, as the topic's own retention does."""
        horizon = now_ms() - self._retention_ms
        stale = [mail_id for mail_id, entry in self._entries.items() if entry.at < horizon]
        for mail_id in stale:
            del self._entries[mail_id]
        if stale:
            log.info("event=ledger_pruned entries=%d kept=%d", len(stale), len(self._entries))
