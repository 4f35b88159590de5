"""Concurrent processing of one Faust stream with offsets acknowledged strictly in arrival order.

Faust commits past in-flight messages when they are acknowledged out of order (and when an agent
raises), so records are processed concurrently here but acknowledged one by one in the order they
arrived, each only after everything it produced was acknowledged by the broker.
"""
import asyncio
import logging
from collections.abc import Awaitable, Callable

from faust import EventT, StreamT

log = logging.getLogger("mercury.dispatcher.pipeline")

Process = Callable[[EventT], Awaitable[None]]


async def run_ordered(stream: StreamT, process: Process, max_in_flight: int) -> None:
    """Consume `stream` until it stops; `process` must not raise (it is the caller's last line of defence)."""
    manual = stream.noack()
    in_flight: asyncio.Queue[tuple[EventT, asyncio.Task]] = asyncio.Queue(max_in_flight)

    async def acknowledge_in_order() -> None:
        while True:
            event, task = await in_flight.get()
            await task
            await manual.ack(event)

    acker = asyncio.create_task(acknowledge_in_order(), name="ordered-acks")
    try:
        async for event in manual.events():
            if acker.done():
                raise RuntimeError("the acknowledging task stopped") from acker.exception()
            await in_flight.put((event, asyncio.create_task(process(event))))
    finally:
        acker.cancel()
