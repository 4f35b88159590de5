"""The delivery ledger: a durable record of each mail's latest send, so no mail is sent twice.

Before a send the worker records `sending` (with the time by which the send will have ended), after it
`sent` or `failed`; giving up records `dead`, once the dead letter itself was acknowledged. Every worker
follows the ledger topic, and before it works on partitions it was just given it reads the ledger up to a
barrier, so a record re-delivered after a crash or a rebalance meets what the previous owner wrote. What
remains is one window: the provider accepted, and the worker died before `sent` was written. The next
owner then finds a `sending` whose time has passed, and reports that attempt as `ambiguous`.

A worker remembers only the last `window_s` of entries, not the topic's whole retention: a record comes
round again only while it is uncommitted, that is within seconds of its handling after a crash or a
rebalance, or within a retry delay for a second copy of a mail. So its memory follows the send rate, not
the history, and a starting worker reads the ledger from the window's start (found by the entries' own
timestamps), not from the beginning. Entries are applied in log order, except that a worker's own
entries count from the moment it writes them: its read-back of an older one never hides a newer one.
"""
import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

from schemas import codec, registry, topics
from schemas.events import now_ms
from schemas.kafka.publishing import Output
from schemas.kafka.replica import Publish, TopicReplica

log = logging.getLogger("mercury.dispatcher.ledger")
SCHEMA = registry.LEDGER_ENTRY
SENDING, SENT, FAILED, DEAD = "sending", "sent", "failed", "dead"
# Workers' clocks differ: a starting worker reads this much further back than its window.
CLOCK_SKEW_MS = 60_000


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    mail_id: str
    state: str
    worker: str
    provider: str
    message_id: str
    until: int
    at: int
    digest: str = ""


class DeliveryLedger:
    def __init__(self, instance: str, publish: Publish, window_s: float, topic: str = topics.LEDGER) -> None:
        self.instance = instance
        self.topic = topic
        self._publish = publish
        self._window_ms = int(window_s * 1000)
        # Oldest first: a mail written again moves to the end, so forgetting stops at the first recent entry.
        self._entries: dict[str, LedgerEntry] = {}
        # This worker's own entries not yet read back: (newest entry, how many are still to come back).
        self._own: dict[str, tuple[LedgerEntry, int]] = {}
        self._replica: TopicReplica | None = None
        self._barrier: asyncio.Future | None = None

    def follow(self, replica: TopicReplica) -> None:
        self._replica = replica

    def window_start(self) -> int:
        """Where a starting worker begins to read: entries older than this never matter to it."""
        return now_ms() - self._window_ms - CLOCK_SKEW_MS

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
        if (own := self._own.get(mail_id)) is not None:
            return own[0]
        return self._entries.get(mail_id)

    def __len__(self) -> int:
        """Mails remembered: bounded by the window, whatever the history."""
        return len(self._entries) + len(self._own)

    async def record(self, mail_id: str, state: str, provider: str = "", message_id: str = "", until: int = 0,
                     digest: str = "") -> None:
        """Write an entry and return once the broker acknowledged it."""
        await self._publish([self.output(mail_id, state, provider, message_id, until, digest=digest)])

    def output(self, mail_id: str, state: str, provider: str = "", message_id: str = "", until: int = 0,
               at: int | None = None, digest: str = "") -> Output:
        """An entry as a record to publish with the mail's other outputs; this worker sees it at once."""
        entry = LedgerEntry(mail_id, state, self.instance, provider, message_id, until, at or now_ms(), digest)
        _, pending = self._own.pop(mail_id, (entry, 0))
        self._own[mail_id] = (entry, pending + 1)
        return Output(self.topic, mail_id, codec.encode(SCHEMA, {
            "mail_id": mail_id, "state": state, "worker": self.instance, "provider": provider,
            "message_id": message_id, "until": until, "at": entry.at, "digest": digest}))

    def entries_last(self, outputs: list[Output]) -> tuple[list[Output], list[Output]]:
        """A record's outputs in the two steps they are published in: the rest, then the ledger's entries."""
        return [o for o in outputs if o.topic != self.topic], [o for o in outputs if o.topic == self.topic]

    def apply(self, key: str, value: bytes) -> None:
        _, record = codec.decode(value)
        entry = LedgerEntry(record["mail_id"], sys.intern(record["state"]), sys.intern(record["worker"]),
                            sys.intern(record["provider"]), record["message_id"], record["until"], record["at"],
                            record["digest"])
        if entry.worker == self.instance and (own := self._own.get(entry.mail_id)) is not None:
            newest, pending = own
            if pending > 1:
                self._own[entry.mail_id] = (newest, pending - 1)
            else:
                del self._own[entry.mail_id]
        self._entries.pop(entry.mail_id, None)
        self._entries[entry.mail_id] = entry
        horizon = now_ms() - self._window_ms
        _forget_before(self._entries, horizon, lambda entry: entry.at)
        # An own entry that never comes back (the broker lost its log) is forgotten like the rest.
        _forget_before(self._own, horizon, lambda own: own[0].at)


def _forget_before(entries: dict, horizon: int, written_at: Callable[[object], int]) -> None:
    """Drop the oldest entries (they come first) until the first written at or after `horizon`."""
    while entries:
        oldest = next(iter(entries))
        if written_at(entries[oldest]) >= horizon:
            return
        del entries[oldest]
