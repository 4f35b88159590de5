"""What every provider's webhook shares: the refusals, the proof of origin and its replay guard, and the record
each provider's events are turned into.

Proof that a webhook request came from the provider is checked before anything in it is trusted; each provider
signs its own way (ingest.webhooks.mailgun, ingest.webhooks.sendgrid). Both refuse a timestamp that is not 1 to
12 ASCII digits, or is more than `TOLERANCE_S` from now, so a captured request cannot be replayed later; within
that window a replay is refused by remembering its key. `verify` reserves the key in the same synchronous step
that checks it, so of concurrent copies of one request only one gets through. The caller then marks the key used
(the request was answered for good) or releases it (not handled: a provider retrying a request answered 503 is
not taken for a replay). The memory is per process: with several gateway processes a replay could reach another
one within the window (what that allows is told in each provider's module).

Provider webhook payloads are turned into `mercury.ProviderEvent` records in the shared FeedbackEvent vocabulary.
Each provider's spelling is handled in its own module; what leaves them is the same record shape for both, with
the message id normalised as on the `sent` event. Provider events that say nothing final about a recipient
(Mailgun accepted or stored, SendGrid processed or deferred, ...) give no record.
"""
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from ingest.errors import GatewayError
from schemas import registry
from schemas.message_ids import normalise_message_id
from schemas.vocabulary import FeedbackEvent

SCHEMA = registry.PROVIDER_EVENT
CREATED_BY = "ingest/webhooks"
REASON_CHARS = 500
# A provider's retry of one event gets the same record id.
_RECORD_NAMESPACE = uuid.UUID("0b7e6a52-3f0c-4b8e-9d43-6c1e2f5a9d71")

TOLERANCE_S = 300
# Far above what an authentic provider sends within the window; bounds memory whatever happens.
MAX_REMEMBERED = 200_000
# Seconds since the epoch: str.isdigit() takes "²" and int() refuses over 4,300 digits, so only these pass.
_SECONDS = re.compile(r"[0-9]{1,12}")

# Reads a checked request into records stamped with the receiving time in ms; raises WebhookRefused.
RecordsOf = Callable[[int], list[dict]]


class WebhookRefused(GatewayError):
    """A webhook request refused for good (the provider's retries are refused the same way); `result` labels it
    on the webhooks metric."""

    result = "invalid"


class PayloadInvalid(WebhookRefused):
    """A webhook body that is not the provider's shape; answered 400 naming `field`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(400, f"{field}: {message}", field)


class SignatureInvalid(WebhookRefused):
    """The request is not provably the provider's (answered 401 with this reason)."""

    result = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(401, message)


class WebhookKeyInvalid(ValueError):
    """A configured webhook key cannot be used; the gateway refuses to start with it."""


def parse_payload(body: bytes) -> object:
    """A provider's JSON payload, whatever its shape (each provider's module checks it); raises a 400."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise WebhookRefused(400, f"body is not JSON: {err}") from None


# Proof of origin ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Verified:
    """A request proven to be the provider's, its replay key reserved: pass it to `mark_used` or `release`."""

    replay_key: str
    timestamp: int


class RecentlySeen:
    """Values of handled requests, forgotten once their timestamp falls out of the tolerance window."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._limit = limit

    def __contains__(self, value: str) -> bool:
        return value in self._expiry

    def add(self, value: str, timestamp: float, now: float) -> None:
        while self._expiry and (next(iter(self._expiry.values())) < now or len(self._expiry) >= self._limit):
            self._expiry.popitem(last=False)
        self._expiry[value] = timestamp + TOLERANCE_S


class ReplayGuard:
    """Replay keys of requests being handled, and of requests answered for good until they are stale anyway."""

    def __init__(self) -> None:
        self._in_flight: set[str] = set()
        self._used = RecentlySeen()

    def _reserve(self, verified: Verified, now: float, what: str) -> Verified:
        fresh(verified.timestamp, now)
        if verified.replay_key in self._used:
            raise SignatureInvalid(f"{what} was already used: a replayed request")
        if verified.replay_key in self._in_flight:
            raise SignatureInvalid(f"{what} is in a request being handled: a replayed request")
        self._in_flight.add(verified.replay_key)
        return verified

    def mark_used(self, verified: Verified, now: float | None = None) -> None:
        """Refuse this key from now on; call once the request was answered for good (handled, or refused
        for what it carries). Never blocks."""
        self._in_flight.discard(verified.replay_key)
        self._used.add(verified.replay_key, verified.timestamp, time.time() if now is None else now)

    def release(self, verified: Verified) -> None:
        """Let this key through again; call when the request was not handled, so the provider's retry passes."""
        self._in_flight.discard(verified.replay_key)


def timestamp_seconds(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < 10**12:
        return raw
    if isinstance(raw, str) and _SECONDS.fullmatch(raw):
        return int(raw)
    raise SignatureInvalid("timestamp: missing or not a number of seconds (1 to 12 ASCII digits)")


def fresh(timestamp: int, now: float) -> None:
    if abs(now - timestamp) > TOLERANCE_S:
        raise SignatureInvalid(f"timestamp {timestamp} is more than {TOLERANCE_S} s from now")


# Records -----------------------------------------------------------------------------------------------------

def required_text(document: Mapping, key: str, where: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PayloadInvalid(f"{where}{key}", "required, a non-empty string")
    return value.strip()


def optional_text(document: Mapping, *keys: str) -> str:
    """The first non-empty string among `keys`, or ""."""
    for key in keys:
        value = document.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def epoch_ms(document: Mapping, key: str, where: str) -> int:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PayloadInvalid(f"{where}{key}", "required, seconds since the Unix epoch")
    return round(value * 1000)


def feedback_record(
    provider: str, event_id: str, message_id: str, event: FeedbackEvent, recipient: str, occurred_at: int,
    received_at: int, bounce: str = "", reason: str = "", url: str = "",
) -> dict:
    return {
        "id": uuid.uuid5(_RECORD_NAMESPACE, f"{provider}:{event_id}").hex,
        "provider": provider,
        "provider_event_id": event_id,
        "message_id": normalise_message_id(message_id),
        "event": str(event),
        "bounce": bounce,
        "recipient": recipient,
        "reason": reason[:REASON_CHARS],
        "url": url,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "created_by": CREATED_BY,
    }
