"""Event webhooks from the sandbox, as the real providers send them after accepting a message.

What happens to each recipient is chosen by its local part (providers/README.md), so a test picks an
outcome by picking an address. Emission never touches the send answer: an accepted message is put on a
bounded queue and a few background tasks POST its signed webhooks after a short delay, in event order
per message, retrying a failed POST with backoff. The provider's own file builds and signs the payloads.
"""
import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import requests

from providers.sandbox import logs
from providers.sandbox.mailbox import Received
from schemas.vocabulary import Bounce, FeedbackEvent

# One step of a recipient's fate: the event and, for a bounce, its kind.
Stage = tuple[FeedbackEvent, Bounce | None]

DELIVERED: Stage = (FeedbackEvent.DELIVERED, None)
# Longest prefix first: "softbounce" must not read as "bounce".
_FATES: tuple[tuple[str, tuple[Stage, ...]], ...] = (
    ("softbounce", ((FeedbackEvent.BOUNCED, Bounce.SOFT),)),
    ("bounce", ((FeedbackEvent.BOUNCED, Bounce.HARD),)),
    ("complain", (DELIVERED, (FeedbackEvent.COMPLAINED, None))),
    ("unsubscribe", (DELIVERED, (FeedbackEvent.UNSUBSCRIBED, None))),
    ("click", (DELIVERED, (FeedbackEvent.OPENED, None), (FeedbackEvent.CLICKED, None))),
    ("open", (DELIVERED, (FeedbackEvent.OPENED, None))),
)
CLICKED_URL = "https://example.com/mercury-sandbox/clicked"
QUEUE_LIMIT = 100_000
ATTEMPTS = 4
FIRST_BACKOFF_S = 0.5
TIMEOUT_S = (2.0, 5.0)


def fate(recipient: str) -> tuple[Stage, ...]:
    """What the provider reports about a recipient, in order, chosen by the local part's prefix."""
    local = recipient.partition("@")[0].lower()
    for prefix, stages in _FATES:
        if local.startswith(prefix):
            return stages
    return (DELIVERED,)


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One signed POST, ready to send; `events` names what it carries, for the logs."""

    body: bytes
    headers: dict[str, str]
    events: tuple[str, ...]


class WebhookFormat(Protocol):
    """A provider's webhook shape and signature."""

    def requests(self, message_id: str, mail: Received) -> list[WebhookRequest]:
        """The signed requests for one accepted message, in the order the provider sends them."""


class WebhookEmitter:
    """Background delivery of one provider's webhooks to one URL."""

    def __init__(
        self, provider: str, url: str, webhook_format: WebhookFormat, delay_s: float, workers: int = 4
    ) -> None:
        self.provider = provider
        self.url = url
        self.format = webhook_format
        self.delay_s = delay_s
        self._queue: asyncio.Queue[tuple[float, str, Received]] = asyncio.Queue(QUEUE_LIMIT)
        self._workers = workers
        # Its own threads for the blocking POSTs: a slow receiver never starves the server's default executor.
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"webhooks-{provider}")
        self._tasks: list[asyncio.Task[None]] = []
        # Messages accepted whose webhooks are not all sent yet: queued, waiting for their time, or in flight.
        self._unsent = 0

    def submit(self, message_id: str, mail: Received) -> None:
        """Queue an accepted message's webhooks; never blocks. A full queue drops them, with a log line."""
        try:
            self._queue.put_nowait((time.monotonic() + self.delay_s, message_id, mail))
            self._unsent += 1
        except asyncio.QueueFull:
            logs.event("webhook.dropped", provider=self.provider, message_id=message_id, reason="queue full")

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        logs.event("webhooks.started", provider=self.provider, url=self.url, delay_ms=round(self.delay_s * 1000))

    async def stop(self) -> None:
        """Cancel the workers; webhooks not yet sent are dropped and counted."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._executor.shutdown(wait=False, cancel_futures=True)
        logs.event("webhooks.stopped", provider=self.provider, unsent_messages=self._unsent)

    async def _work(self) -> None:
        with requests.Session() as session:
            session.trust_env = False
            while True:
                due, message_id, mail = await self._queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                for request in self.format.requests(message_id, mail):
                    await self._deliver(session, message_id, request)
                self._unsent -= 1

    async def _deliver(self, session: requests.Session, message_id: str, request: WebhookRequest) -> None:
        """POST with retries on network errors, 429 and 5xx; any other answer is final."""
        backoff = FIRST_BACKOFF_S
        loop = asyncio.get_running_loop()
        for attempt in range(1, ATTEMPTS + 1):
            status, error = await loop.run_in_executor(self._executor, self._post, session, request)
            fields = {"provider": self.provider, "message_id": message_id, "events": ",".join(request.events),
                      "attempt": attempt, "status": status}
            if status is not None and 200 <= status < 300:
                logs.event("webhook.delivered", **fields)
                return
            if status is not None and status != 429 and status < 500:
                logs.event("webhook.refused", **fields, error=error)
                return
            if attempt == ATTEMPTS:
                logs.event("webhook.failed", **fields, error=error)
                return
            logs.event("webhook.retrying", **fields, error=error, backoff_s=backoff)
            await asyncio.sleep(backoff)
            backoff *= 2

    def _post(self, session: requests.Session, request: WebhookRequest) -> tuple[int | None, str]:
        """Blocking; runs in a thread. (status, answer or error text); status None without an answer."""
        try:
            response = session.post(self.url, data=request.body, headers=request.headers, timeout=TIMEOUT_S)
        except requests.RequestException as err:
            return None, f"{type(err).__name__}: {err}"
        return response.status_code, response.text[:200]

