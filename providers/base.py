"""The adapter abstraction: the base class owns the send sequence, each provider fills the hooks.

`ProviderAdapter.send()` runs prepare_message → send_message → result (post-processing), measures
latency, and turns the transport's own exceptions into the shared error classes through
`classify_failure`; it knows no wire protocol. `MailService` is its HTTP form, shared by every provider
with an HTTP API: result() classifies error statuses and asks response_details for the message id.
An adapter overrides only what its API does differently.
"""
import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

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


_DEFAULT_HEADERS = {"User-Agent": "mercury/1.0", "Accept": "application/json"}


@dataclass(frozen=True, slots=True)
class SendResult:
    """A send the provider accepted; `refused` names recipients it turned down while taking the rest (SMTP)."""

    provider: str
    message_id: str
    status: int
    latency_ms: float
    refused: tuple[str, ...] = ()


class ProviderAdapter(ABC):
    """One email provider, whatever its wire protocol: what the dispatcher calls. Safe to share between threads.

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

    def send(self, mail: Mail) -> SendResult:
        """Deliver one mail. Blocks for at most about the connect plus read timeout; run it in a worker thread.

        Raises a ProviderError subclass: TransientError (network, provider outage), ThrottledError,
        ProviderFailure, PermanentError or AmbiguousError (no answer after the mail went out).
        """
        message = self.prepare_message(mail)
        started = time.perf_counter()
        try:
            answer = self.send_message(message)
        except self.failure_types as err:
            raise self.classify_failure(err) from err
        return self.result(answer, (time.perf_counter() - started) * 1000)

    @abstractmethod
    def prepare_message(self, mail: Mail) -> Any:
        """Build the request in the provider's shape; pure, no I/O."""

    @abstractmethod
    def send_message(self, message: Any) -> Any:
        """Hand the message to the provider; returns its answer, raises one of `failure_types` or a ProviderError."""

    @abstractmethod
    def result(self, answer: Any, latency_ms: float) -> SendResult:
        """Post-process the answer: the accepted send, or raise its classified ProviderError."""

    @abstractmethod
    def classify_failure(self, err: Exception) -> ProviderError:
        """The classified error for an exception of `failure_types`; send() raises it from `err`."""

    def close(self) -> None:
        """Release pooled connections; call once at shutdown."""


class MailService(ProviderAdapter):
    """One email provider's HTTP API. Safe to share between threads: each thread gets its own session."""

    failure_types = (requests.RequestException,)
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
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def classify_failure(self, err: Exception) -> ProviderError:
        """The error's class in words a tenant may read; the exception's own text (hosts, paths, the sending
        domain) goes to the operators' log only."""
        log.warning("event=provider_transport_error provider=%s error=%r", self.name, err)
        if isinstance(err, requests.ConnectTimeout):
            return TransientError(self.name, f"no connection within {self.timeout[0]}s", cause=FailureCause.NETWORK)
        if isinstance(err, requests.ReadTimeout):
            return AmbiguousError(self.name, f"no answer within {self.timeout[1]}s after sending")
        # Refused, reset, DNS failure and the rest of the transport: the provider is unreachable from here.
        return TransientError(self.name, f"{type(err).__name__}: the provider could not be reached",
                              cause=FailureCause.NETWORK)

    def result(self, answer: requests.Response, latency_ms: float) -> SendResult:
        return SendResult(self.name, self.post_process(answer), answer.status_code, latency_ms)

    def post_process(self, response: requests.Response) -> str:
        """Return the provider's message id for an accepted send; raise the classified error otherwise."""
        if not 200 <= response.status_code < 300:
            err = self.error_for(response)
            # The answer itself is for operators only: tenants see the error's class, status and detail.
            log.warning("event=provider_error_answer provider=%s status=%d outcome=%s body=%r", self.name,
                        response.status_code, err.outcome, err.body)
            raise err
        message_id = self.response_details(response)
        if not message_id:
            # The provider took the mail (2xx), so sending it again would duplicate it; only its id is lost.
            log.warning("event=accepted_without_id provider=%s status=%d", self.name, response.status_code)
        return message_id

    @abstractmethod
    def prepare_message(self, mail: Mail) -> Any:
        """Build the request payload in the provider's shape; pure, no I/O."""

    @abstractmethod
    def send_message(self, message: Any) -> requests.Response:
        """Make the HTTP call (through `self.post`, which applies session and timeouts)."""

    @abstractmethod
    def response_details(self, response: requests.Response) -> str:
        """Read the message id from an accepted (2xx) response; "" when the answer does not carry one."""

    def error_detail(self, response: requests.Response) -> str:
        """The provider's own explanation of an error answer, which each adapter reads from its API's error
        shape. This default reads no body: an answer in no known shape (a proxy's HTML page, a redirect) is
        told by its status alone, so what a host answers never reaches a tenant."""
        try:
            phrase = HTTPStatus(response.status_code).phrase
        except ValueError:
            phrase = "unknown status"
        return f"{phrase}, without a {self.full_name} error message"

    def retry_after(self, response: requests.Response) -> float | None:
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

    def error_for(self, response: requests.Response) -> ProviderError:
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

    @property
    def session(self) -> requests.Session:
        """This thread's session: requests sessions are not thread-safe, but reusing one keeps connections alive."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            # requests re-reads the proxy environment on every call when trust_env is set, a large share
            # of a send's CPU; the proxies for this base URL are resolved once per session instead.
            session.trust_env = False
            session.proxies = requests.utils.get_environ_proxies(self.base_url)
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        """POST through this thread's session, always with (connect, read) timeouts and no redirects.

        The request is prepared on its own and sent on the session's pooled connections: merging session
        settings (cookies, hooks, environment) per call costs more CPU than the HTTP exchange, and none
        of them apply to an API call."""
        headers = {**_DEFAULT_HEADERS, **kwargs.pop("headers", {})}
        prepared = requests.Request("POST", url, headers=headers, **kwargs).prepare()
        session = self.session
        return session.send(prepared, timeout=self.timeout, allow_redirects=False, proxies=session.proxies)

    def close(self) -> None:
        """Close every thread's session; call once at shutdown."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()
