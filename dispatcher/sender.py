"""Provider adapters block on HTTP, so sends run in a bounded thread pool (each thread keeps its own session).

A send queued behind busy threads checks its lease when its thread takes it: one whose partition was given up
meanwhile (or whose worker is stopping) never starts, so a rebalance waits for the sends really running, each
bounded by its timeout, not for the whole queue."""
import asyncio
from concurrent.futures import ThreadPoolExecutor

from dispatcher.ownership import Lease
from providers.base import ProviderAdapter, SendResult
from schemas.model import Mail


class NotStarted(Exception):
    """The lease closed while the send waited for a thread; the provider was not called."""


class ThreadedSender:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="send")

    async def __call__(self, service: ProviderAdapter, mail: Mail, lease: Lease) -> SendResult:
        return await asyncio.get_running_loop().run_in_executor(self._pool, _send_if_still_leased, service, mail,
                                                                lease)

    def close(self) -> None:
        """Stop the threads; sends still queued are dropped (their worker is stopping), running ones end
        within their timeout."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _send_if_still_leased(service: ProviderAdapter, mail: Mail, lease: Lease) -> SendResult:
    if not lease.may_send:  # a flag read across threads: set once by the event loop, never cleared
        raise NotStarted()
    return service.send(mail)
