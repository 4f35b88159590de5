"""What went wrong with one send attempt, classified so the dispatcher can decide without re-reading HTTP.

Adapters only classify: each class maps to one `Outcome`, and the dispatcher alone turns that into
failover, a retry topic, a dead letter or a breaker penalty. Raise a subclass, never the root, and
always `raise ... from err` so the underlying exception survives.

What a tenant sees of a failed attempt (its `attempt_failed` event, a dead letter's reason) is the class, the
status and `detail`; `detail` is bounded and on one line whatever the adapter put in it, and adapters put in
only their own words or the message of the provider's known error shape, never the raw answer (`body`).
"""
import unicodedata
from typing import ClassVar

from schemas.vocabulary import FailureCause, Outcome

BODY_LIMIT = 2048
DETAIL_LIMIT = 200


def excerpt(text: str, limit: int) -> str:
    """`text` on one line, without control or format characters (escapes, line breaks, bidi overrides), at
    most `limit` characters: safe in an event a tenant reads or a log line."""
    # Cut first: the cleaning is per character, and only the start can be kept.
    kept = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text[: 4 * limit])
    clean = " ".join(kept.split())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


class ProviderError(Exception):
    """Root of every classified provider error; `detail` is shown to tenants, `body` only to operators."""

    outcome: ClassVar[Outcome]

    def __init__(
        self, provider: str, detail: str, *, status: int | None = None, body: str = "", protocol: str = "HTTP"
    ) -> None:
        detail = excerpt(detail, DETAIL_LIMIT)
        super().__init__(provider, detail, status)
        self.provider = provider
        self.detail = detail
        # `status` is the answer's code in `protocol`: an HTTP status, or an SMTP reply code for a relay.
        self.status = status
        self.protocol = protocol
        # Providers sometimes answer errors with a whole HTML page; the start is enough to diagnose, in logs.
        self.body = body[:BODY_LIMIT]

    def __str__(self) -> str:
        status = "no answer" if self.status is None else f"{self.protocol} {self.status}"
        return f"{self.provider}: {self.detail} ({status})"


class TransientError(ProviderError):
    """Worth trying again, elsewhere first: the network, a provider outage or a rate limit."""

    outcome = Outcome.TRANSIENT

    def __init__(
        self,
        provider: str,
        detail: str,
        *,
        cause: FailureCause,
        status: int | None = None,
        body: str = "",
        protocol: str = "HTTP",
    ) -> None:
        super().__init__(provider, detail, status=status, body=body, protocol=protocol)
        self.cause = cause


class ThrottledError(TransientError):
    """The provider asked us to slow down (429); `retry_after` is its hint in seconds, if it gave one."""

    def __init__(
        self,
        provider: str,
        detail: str,
        *,
        retry_after: float | None,
        status: int | None = 429,
        body: str = "",
        protocol: str = "HTTP",
    ) -> None:
        super().__init__(provider, detail, cause=FailureCause.RATE_LIMIT, status=status, body=body, protocol=protocol)
        self.retry_after = retry_after


class ProviderFailure(ProviderError):
    """The provider refuses us, not the mail (auth, payment, suspension, size): stop using it for this mail."""

    outcome = Outcome.PROVIDER_FAILURE


class PermanentError(ProviderError):
    """The mail itself is unacceptable (validation, bad recipient): no provider will take it; not a breaker fault."""

    outcome = Outcome.PERMANENT


class AmbiguousError(ProviderError):
    """The request went out but no usable answer came back: the provider may have accepted the mail."""

    outcome = Outcome.AMBIGUOUS


class ProviderConfigError(Exception):
    """The provider configuration is unusable; raised at construction so the process stops at start."""
