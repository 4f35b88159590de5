"""Provider adapters block on HTTP, so sends run in a bounded thread pool (each thread keeps its own session).

The pool's threads are joined at interpreter exit, so a send in flight at shutdown finishes within its timeout."""
import asyncio
from concurrent.futures import ThreadPoolExecutor

from providers.base import ProviderAdapter, SendResult
from schemas.model import Mail


class ThreadedSender:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="send")

    async def __call__(self, service: ProviderAdapter, mail: Mail) -> SendResult:
        return await asyncio.get_running_loop().run_in_executor(self._pool, service.send, mail)

    def close(self) -> None:
        """Let sends in flight finish (each within its timeout) and stop the threads."""
        self._pool.shutdown(wait=True)
