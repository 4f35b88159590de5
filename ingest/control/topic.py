"""A compacted control topic as the gateway's admin endpoints use it: followed into memory, written through.

A write returns once the broker acknowledged it and this process's replica has read it back, so the next
read here shows it. Reads wait until the topic was read up to the start of this process at least once.
Every failure to reach the broker within the timeout is ControlUnavailable (the endpoint answers 503).
"""
import asyncio
import logging
import os
import uuid
from collections.abc import Callable

from ingest.errors import GatewayError
from schemas.kafka.producer import AsyncProducer, BrokerUnavailable, MaybeWritten
from schemas.kafka.publishing import Output
from schemas.kafka.replica import TopicReplica

log = logging.getLogger("mercury.ingest.control")


class ControlUnavailable(RuntimeError):
    """The topic could not be read or written in time."""


class Unconfirmed(ControlUnavailable):
    """A write was handed to the broker but not confirmed in time, or not read back: it may be stored."""


def not_stored(err: ControlUnavailable, what: str) -> GatewayError:
    """A 503 that tells the truth: `what` was not stored, or may have been when unconfirmed."""
    if isinstance(err, Unconfirmed):
        return GatewayError(503, f"{what} may or may not have been stored ({err}); read it back to check before "
                                 "trying again")
    return GatewayError(503, f"{what} was not stored: {err}")


class ControlTopic:
    def __init__(self, bootstrap: str, topic: str, apply: Callable[[str, bytes], None],
                 timeout_s: float = 10.0) -> None:
        self.topic = topic
        self._timeout_s = timeout_s
        self._producer: AsyncProducer | None = None
        self._loading: asyncio.Task | None = None
        self._ready = False
        self._replica = TopicReplica(bootstrap, topic, f"ingest-{os.getpid()}-{uuid.uuid4().hex[:6]}", apply,
                                     self._publish)

    async def start(self, producer: AsyncProducer) -> None:
        """Follow the topic, writing through `producer` (the gateway's); call from the app's lifespan. Reads
        it up to now if the broker answers within the timeout, else the first request waits for it."""
        self._producer = producer
        try:
            await self.loaded()
        except ControlUnavailable as err:
            log.warning("control_topic_not_loaded", extra={"topic": self.topic, "error": str(err)})

    def close(self) -> None:
        self._replica.close()

    async def loaded(self) -> None:
        """Return once the topic was read up to the first call; raises ControlUnavailable."""
        if self._ready:
            return
        # One read for every waiting request: a timed-out wait leaves it running for the next.
        if self._loading is None or (self._loading.done() and self._loading.exception() is not None):
            self._loading = asyncio.create_task(self._replica.caught_up())
        await self._within(asyncio.shield(self._loading), "read")
        self._ready = True

    async def refresh(self) -> None:
        """Read everything written so far, by any process; raises ControlUnavailable."""
        await self.loaded()
        await self._within(self._replica.caught_up(), "read")

    async def write(self, key: str, value: bytes) -> None:
        """Store a record and return once this process applied it; raises ControlUnavailable, or its
        Unconfirmed once the record may have been written."""
        await self._publish([Output(self.topic, key, value)])
        try:
            await self._within(self._replica.caught_up(), "read back")
        except ControlUnavailable as err:
            raise Unconfirmed(str(err)) from err

    async def _within(self, waiting: object, what: str) -> None:
        try:
            await asyncio.wait_for(waiting, self._timeout_s)
        except TimeoutError as err:
            raise ControlUnavailable(f"{self.topic} could not be {what} within {self._timeout_s:g} s") from err
        except (ControlUnavailable, BrokerUnavailable) as err:
            raise ControlUnavailable(f"{self.topic} could not be {what}: {err}") from err

    async def _publish(self, outputs: list[Output]) -> None:
        if self._producer is None:
            raise ControlUnavailable("the gateway has not started")
        try:
            for output in outputs:
                await self._producer.send(output.topic, output.key, output.value, output.partition)
        except MaybeWritten as err:
            raise Unconfirmed(f"{self.topic} did not confirm the write: {err}") from err
        except BrokerUnavailable as err:
            raise ControlUnavailable(f"{self.topic} is unavailable: {err}") from err


class ControlView:
    """What a gateway process keeps in memory of one control topic; `_apply` folds in each record read."""

    def __init__(self, bootstrap: str, topic: str, timeout_s: float) -> None:
        self._topic = ControlTopic(bootstrap, topic, self._apply, timeout_s)

    async def start(self, producer: AsyncProducer) -> None:
        """Follow the topic, writing through the gateway's producer; call from the app's lifespan."""
        await self._topic.start(producer)

    def close(self) -> None:
        self._topic.close()

    async def loaded(self, what: str) -> None:
        """Wait until the topic was read up to this process's start; raises a 503 naming `what` cannot be read."""
        try:
            await self._topic.loaded()
        except ControlUnavailable as err:
            raise GatewayError(503, f"{what} cannot be read now: {err}") from err

    def _apply(self, key: str, value: bytes) -> None:
        raise NotImplementedError
