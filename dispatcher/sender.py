"""At most `concurrency` provider sends at once per worker, each a coroutine on the worker's event loop.

HTTP adapters send through aiohttp on this loop, so a slot costs no thread: the bound is there to keep a worker
from opening more connections to a provider, and holding more mails mid-send at a rebalance, than it can finish
within a send's timeout (the SMTP adapter bounds its own threads the same way).

A send waiting for a slot checks its lease when it gets one: one whose partition was given up meanwhile (or whose
worker is stopping) never starts, so a rebalance waits for the sends really running, each bounded by its timeout,
not for every send queued behind them."""
import asyncio

from dispatcher.ownership import Lease
from providers.base import ProviderAdapter, SendResult
from schemas.model import Mail


class NotStarted(Exception):
    """The lease closed while the send waited for a slot; the provider was not called."""


class BoundedSender:
    def __init__(self, concurrency: int) -> None:
        """Raises ValueError for a concurrency below 1."""
        if concurrency < 1:
            raise ValueError(f"send concurrency must be at least 1, got {concurrency}")
        self._slots = asyncio.Semaphore(concurrency)

    async def __call__(self, service: ProviderAdapter, mail: Mail, lease: Lease) -> SendResult:
        async with self._slots:
            if not lease.may_send:
                raise NotStarted()
            return await service.send(mail)
