"""Concurrent processing of one Faust stream with offsets acknowledged strictly in arrival order.

Faust commits past in-flight messages when they are acknowledged out of order (and when an agent
raises), so records are processed concurrently here but acknowledged one by one in the order they
arrived, each only after everything it produced was acknowledged by the broker, and only while its lease
allows (a record of a partition given up, or left unfinished at shutdown, is for the next owner).
"""
import asyncio
import logging
from collections.abc import Awaitable, Callable

from faust import EventT, StreamT

from dispatcher.ownership import Lease

log = logging.getLogger("mercury.dispatcher.pipeline")

Process = Callable[[EventT, Lease], Awaitable[None]]
LeaseFor = Callable[[EventT], Lease]


class Backlog:
    """Records consumed but not yet acknowledged or let go, over every stream of a worker: a stopping worker
    waits for it to empty before it commits."""

    def __init__(self) -> None:
        self._count = 0
        self._empty = asyncio.Event()
        self._empty.set()

    def add(self) -> None:
        self._count += 1
        self._empty.clear()

    def done(self) -> None:
        self._count -= 1
        if not self._count:
            self._empty.set()

    def __len__(self) -> int:
        return self._count

    async def emptied(self) -> None:
        await self._empty.wait()


async def run_ordered(stream: StreamT, process: Process, lease_for: LeaseFor, max_in_flight: int,
                      backlog: Backlog) -> None:
    """Consume `stream` until it stops; `process` must not raise (it is the caller's last line of defence). Each
    record's lease is taken as it is read, before anything else can run, so a revocation cannot slip between."""
    manual = stream.noack()
    in_flight: asyncio.Queue[tuple[EventT, Lease, asyncio.Task]] = asyncio.Queue(max_in_flight)

    async def acknowledge_in_order() -> None:
        while True:
            event, lease, task = await in_flight.get()
            try:
                await task
                if lease.may_ack():
                    await manual.ack(event)
            finally:
                backlog.done()

    acker = asyncio.create_task(acknowledge_in_order(), name="ordered-acks")
    try:
        async for event in manual.events():
            if acker.done():
                raise RuntimeError("the acknowledging task stopped") from acker.exception()
            backlog.add()
            lease = lease_for(event)
            await in_flight.put((event, lease, asyncio.create_task(process(event, lease))))
    finally:
        acker.cancel()
