"""The adapter abstraction: the base class owns the send sequence, each provider fills the hooks.

`ProviderAdapter.send()` runs prepare_message → send_message → result (post-processing), measures
latency, and turns the transport's own exceptions into the shared error classes through
`classify_failure`; it knows no wire protocol. `MailService` is its HTTP form, shared by every provider
with an HTTP API: result() classifies error statuses and asks response_details for the message id.
An adapter overrides only what its API does differently.

Sends are coroutines on the caller's event loop: an HTTP send costs about 0.2 ms of CPU this way, and a
blocking client in a thread pool costs about four times that per send (the client, then the thread hop).
"""
import asyncio
import json
import logging
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from providers.errors import (
    AmbiguousError,
    PermanentError,
    ProviderConfigError,
    ProviderError,
    ProviderFailure,
    ThrottledError,
    TransientError,
)
from schemas.model import Mail
from schemas.vocabulary import FailureCause

log = logging.getLogger("mercury.providers")


# Plain answers: aiohttp would otherwise ask for gzip, and inflating answers of a few hundred bytes costs more
# CPU than it saves.
_DEFAULT_HEADERS = {"User-Agent": "mercury/1.0", "Accept": "application/json", "Accept-Encoding": "identity"}
# Open connections per adapter (one provider host each); sends beyond it wait for a free one.
CONNECTIONS_PER_PROVIDER = 100


@dataclass(frozen=True, slots=True)
class SendResult:
    """A send the provider accepted; `refused` names recipients it turned down while taking the rest (SMTP)."""

    provider: str
    message_id: str
    status: int
    latency_ms: float
    refused: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's HTTP answer, read whole before the connection goes back to the pool: what the adapters
    classify and read message ids from. `headers` are case-insensitive."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return json.loads(self.content)


class ProviderAdapter(ABC):
    """One email provider, whatever its wire protocol: what the dispatcher calls, on one event loop.

    `timeout` is (connect, read) in seconds; one send takes at most about their sum, which the dispatcher
    uses as the bound of a send in flight.
    """

    # The provider's id in events, breakers and rate limits: the type's own name unless a registry entry
    # names it otherwise (e.g. "mailgun-eu"), so it is set per instance.
    name: str
    full_name: ClassVar[str]
    # What the transport raises on its own (no answer, or an answer it turns into an exception); send()
    # hands each to classify_failure. An error already classified (a ProviderError) passes through.
    failure_types: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        """Raises ProviderConfigError for a non-positive timeout."""
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ProviderConfigError(f"{self.name}: timeouts must be positive, got {connect_timeout}, {read_timeout}")
        self.timeout = (connect_timeout, read_timeout)

    async def send(self, mail: Mail) -> SendResult:
        """Deliver one mail, in at most about the connect plus read timeout.

        Raises a ProviderError subclass: TransientError (network, provider outage), ThrottledError,
        ProviderFailure, PermanentError or AmbiguousError (no answer after the mail went out).
        """
        message = self.prepare_message(mail)
        started = time.perf_counter()
        try:
            answer = await self.send_message(message)
        except self.failure_types as err:
            raise self.classify_failure(err) from err
        return self.result(answer, (time.perf_counter() - started) * 1000)

    @abstractmethod
    def prepare_message(self, mail: Mail) -> Any:
        """Build the request in the provider's shape; pure, no I/O."""

    @abstractmethod
    async def send_message(self, message: Any) -> Any:
        """Hand the message to the provider; returns its answer, raises one of `failure_types` or a ProviderError."""

    @abstractmethod
    def result(self, answer: Any, latency_ms: float) -> SendResult:
        """Post-process the answer: the accepted send, or raise its classified ProviderError."""

    @abstractmethod
    def classify_failure(self, err: Exception) -> ProviderError:
        """The classified error for an exception of `failure_types`; send() raises it from `err`."""

    def close(self) -> None:
        """Release pooled connections or threads once the adapter is out of service; callable from any thread."""


@dataclass(frozen=True, slots=True)
class _Session:
    """An adapter's HTTP client, bound to the event loop it was opened on, and the proxy its base URL takes."""

    client: aiohttp.ClientSession
    loop: asyncio.AbstractEventLoop
    proxy: str | None


class MailService(ProviderAdapter):
    """One email provider's HTTP API: one pooled client session, opened on the event loop of the first send."""

    # aiohttp's own errors, and the OSErrors of the transport under it (TimeoutError among them).
    failure_types = (aiohttp.ClientError, OSError)
    # Statuses that condemn the mail itself rather than the provider; an API with more overrides this.
    permanent_statuses: ClassVar[frozenset[int]] = frozenset({400})

    def __init__(
        self, base_url: str, api_key: str, *, connect_timeout: float = 2.0, read_timeout: float = 10.0
    ) -> None:
        """Raises ProviderConfigError for a URL without scheme or host, an empty key or a non-positive timeout."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ProviderConfigError(f"{self.name}: base URL {base_url!r} needs an http(s) scheme and a host")
        if not api_key:
            raise ProviderConfigError(f"{self.name}: the API key is empty")
        super().__init__(connect_timeout=connect_timeout, read_timeout=read_timeout)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._session: _Session | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def classify_failure(self, err: Exception) -> ProviderError:
        """The error's class in words a tenant may read; the exception's own text (hosts, paths, the sending
        domain) goes to the operators' log only."""
        log.warning("provider_transport_error", extra={"provider": self.name, "error": repr(err)})
        if isinstance(err, aiohttp.ConnectionTimeoutError):
            return TransientError(self.name, f"no connection within {self.timeout[0]}s", cause=FailureCause.NETWORK)
        if isinstance(err, aiohttp.SocketTimeoutError):
            return AmbiguousError(self.name, f"no answer within {self.timeout[1]}s after sending")
        if isinstance(err, TimeoutError):
            # The whole exchange's bound (connect plus read timeout): connected, the request (partly) written.
            return AmbiguousError(self.name, f"no complete answer within {sum(self.timeout)}s")
        # Refused, reset, DNS failure and the rest of the transport: the provider is unreachable from here.
        return TransientError(self.name, f"{type(err).__name__}: the provider could not be reached",
                              cause=FailureCause.NETWORK)

    def result(self, answer: Answer, latency_ms: float) -> SendResult:
        return SendResult(self.name, self.post_process(answer), answer.status_code, latency_ms)

    def post_process(self, response: Answer) -> str:
        """Return the provider's message id for an accepted send; raise the classified error otherwise."""
        if not 200 <= response.status_code < 300:
            err = self.error_for(response)
            # The answer itself is for operators only: tenants see the error's class, status and detail.
            log.warning("provider_error_answer", extra={
                "provider": self.name, "status": response.status_code, "outcome": err.outcome, "body": err.body})
            raise err
        message_id = self.response_details(response)
        if not message_id:
            # The provider took the mail (2xx), so sending it again would duplicate it; only its id is lost.
            log.warning("accepted_without_id", extra={"provider": self.name, "status": response.status_code})
        return message_id

    @abstractmethod
    def prepare_message(self, mail: Mail) -> Any:
        """Build the request payload in the provider's shape; pure, no I/O."""

    @abstractmethod
    async def send_message(self, message: Any) -> Answer:
        """Make the HTTP call (through `self.post` or `self.post_json`, which apply the session and timeouts)."""

    @abstractmethod
    def response_details(self, response: Answer) -> str:
        """Read the message id from an accepted (2xx) response; "" when the answer does not carry one."""

    def error_detail(self, response: Answer) -> str:
        """The provider's own explanation of an error answer, which each adapter reads from its API's error
        shape. This default reads no body: an answer in no known shape (a proxy's HTML page, a redirect) is
        told by its status alone, so what a host answers never reaches a tenant."""
        try:
            phrase = HTTPStatus(response.status_code).phrase
        except ValueError:
            phrase = "unknown status"
        return f"{phrase}, without a {self.full_name} error message"

    def retry_after(self, response: Answer) -> float | None:
        """Seconds to wait from a Retry-After header, which may be delta-seconds or an HTTP date."""
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())

    def error_for(self, response: Answer) -> ProviderError:
        """Map an error status to its class; shared by every adapter, which only supplies `error_detail`."""
        status, body = response.status_code, response.text
        detail = self.error_detail(response)
        if status == 429:
            return ThrottledError(self.name, detail, retry_after=self.retry_after(response), body=body)
        if status >= 500 or status == 408:
            return TransientError(self.name, detail, cause=FailureCause.PROVIDER, status=status, body=body)
        if status in self.permanent_statuses:
            return PermanentError(self.name, detail, status=status, body=body)
        # 401/403 auth or suspension, 402 payment, 404 unknown domain, 413 size, and any answer
        # (a redirect, an unexpected 4xx) this adapter does not understand: another provider may do better.
        return ProviderFailure(self.name, detail, status=status, body=body)

    async def post_json(self, url: str, message: Any, headers: Mapping[str, str]) -> Answer:
        """POST `message` as JSON (standard separators, non-ASCII escaped, NaN refused: the bytes requests'
        `json=` writes, which the providers' APIs are known to take)."""
        return await self.post(url, json.dumps(message, allow_nan=False).encode(), "application/json", headers)

    async def post(self, url: str, body: bytes, content_type: str, headers: Mapping[str, str]) -> Answer:
        """POST through this adapter's pooled session, without redirects, and read the whole answer."""
        session = self._open_session()
        async with session.client.post(url, data=body, headers={**headers, "Content-Type": content_type},
                                       proxy=session.proxy, allow_redirects=False) as response:
            return Answer(response.status, response.headers, await response.read())

    def _open_session(self) -> _Session:
        """The session of the running loop, opened on the first send. Connections are pooled per loop, so an
        adapter serves one loop at a time; after close() the next send opens a new session."""
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None:
            connect, read = self.timeout
            client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS_PER_PROVIDER),
                headers=_DEFAULT_HEADERS,
                # `read` bounds each wait for data once the request is written, as a socket timeout did; the
                # total bounds what neither covers (writing a body the server does not read, an answer that
                # trickles), so a send ends within the connect plus read timeout the dispatcher counts on.
                timeout=aiohttp.ClientTimeout(total=connect + read, sock_connect=connect, sock_read=read),
                # The environment's proxy is resolved once below; trust_env would also read ~/.netrc credentials.
                trust_env=False,
            )
            session = self._session = _Session(client, loop, environment_proxy(self.base_url))
        elif session.loop is not loop:
            raise RuntimeError(f"{self!r} sends on another event loop; close() it first")
        return session

    def close(self) -> None:
        """Close the session on its own loop (the dispatcher may call this from another thread); a loop that is
        no longer running closes it here, and a closed loop took its connections down with it."""
        session, self._session = self._session, None
        if session is None or session.loop.is_closed():
            return
        if session.loop.is_running():
            asyncio.run_coroutine_threadsafe(session.client.close(), session.loop)
        else:
            session.loop.run_until_complete(session.client.close())


def environment_proxy(url: str) -> str | None:
    """The proxy the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) names for `url`, read as curl and
    requests read it; once per session, since reading the environment per call costs a large share of a send."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.netloc, proxies):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")
