"""Which partitions this worker may still send for, and the sends it has under way.

A rebalance hands a partition to another worker, which reads it again from its committed offset. Two rules keep
a record from being sent by both: the previous owner starts no send for a record of a partition it gave up (a
record still waiting for its due time, a rate-limit slot or a probe is abandoned, not sent), and it finishes every
send it had started, `sent`/`failed` ledger entry included, before it lets the rebalance go on. The new owner's
ledger barrier comes after that, so it meets every entry the previous owner wrote.

Each record is handled under a `Lease` on its partition's current assignment (a claim). Giving partitions up
closes their claims: leases may neither send nor be acknowledged. Stopping closes every claim for sending only:
what was finished is still acknowledged and committed, up to the first record left unfinished.
"""
import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from schemas.events import now_ms

TopicPartition = tuple[str, int]


class Abandoned(Exception):
    """The record's partition was given up (or the worker is stopping) before its send started."""


class _Claim:
    """One assignment of one partition: open until revoked or until the worker stops."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.current = True
        self.gap = False

    def close(self, current: bool) -> None:
        self.current = self.current and current
        self.closed.set()


class Lease:
    """The right to send for one record; `abandoned` once the dispatcher gave the record up unsent."""

    __slots__ = ("_claim", "abandoned")

    def __init__(self, claim: _Claim) -> None:
        self._claim = claim
        self.abandoned = False

    @property
    def may_send(self) -> bool:
        return not self._claim.closed.is_set()

    def abandon(self) -> None:
        self.abandoned = True

    def may_ack(self) -> bool:
        """Called in arrival order: a record after an abandoned one of the same claim is not acknowledged either,
        so the committed offset never passes a record nobody finished."""
        if self.abandoned:
            self._claim.gap = True
        return self._claim.current and not self._claim.gap

    async def wait_until(self, at_ms: int) -> None:
        """Sleep until `at_ms`; raises Abandoned at once if the claim closes first."""
        if (wait_s := (at_ms - now_ms()) / 1000) > 0:
            try:
                await asyncio.wait_for(self._claim.closed.wait(), wait_s)
            except TimeoutError:
                return
        if not self.may_send:
            raise Abandoned()


class Ownership:
    def __init__(self) -> None:
        self._claims: dict[TopicPartition, _Claim] = {}
        self._stopping = False
        self._sends = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def lease(self, topic: str, partition: int) -> Lease:
        """A lease for a record just read from `topic`/`partition` (a new claim after a revocation). Take it as
        the record is read: Faust passes no record of a partition between its revocation and its next
        assignment (flow control is suspended, then the generation must match), so a record read before a
        revocation holds a claim the revocation closes, and one read after it holds a new claim."""
        claim = self._claims.get((topic, partition))
        if claim is None:
            claim = self._claims[(topic, partition)] = _Claim()
            if self._stopping:
                claim.close(current=True)
        return Lease(claim)

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """The partitions are someone else's now: nothing of them is sent or acknowledged by this worker."""
        for tp in partitions:
            if (claim := self._claims.pop(tp, None)) is not None:
                claim.close(current=False)

    def stop(self) -> None:
        """No new sends at all; what was finished may still be acknowledged."""
        self._stopping = True
        for claim in self._claims.values():
            claim.close(current=True)

    @contextmanager
    def sending(self, lease: Lease) -> Iterator[None]:
        """Count a send as under way; raises Abandoned when the lease may no longer send. Enter it with no
        `await` between the last wait and the send, so a revocation either sees the send or prevents it."""
        if not lease.may_send:
            raise Abandoned()
        self._sends += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._sends -= 1
            if not self._sends:
                self._idle.set()

    @property
    def sends(self) -> int:
        return self._sends

    async def settled(self) -> None:
        """Return once no send is under way (each ends within its adapter's timeout)."""
        await self._idle.wait()
