"""The one shared vocabulary: event types, attempt outcomes, dead-letter reasons and provider health states.

Every provider result, every event and every dead letter uses these values before it reaches Kafka or
ClickHouse, so queries never have to guess a spelling.
"""
from enum import StrEnum

# The HTTP header whose value a mail id derives from (ingest.mails.idempotency); a conflict under it is reported by
# the dispatcher too.
IDEMPOTENCY_HEADER = "Idempotency-Key"


class EventType(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DISPATCHED = "dispatched"
    ATTEMPT_FAILED = "attempt_failed"
    SENT = "sent"
    RETRY_SCHEDULED = "retry_scheduled"
    DEAD_LETTERED = "dead_lettered"
    SCHEDULED = "scheduled"
    REPLAYED = "replayed"
    DUPLICATE = "duplicate"


TERMINAL_EVENTS: frozenset[EventType] = frozenset(
    {EventType.SENT, EventType.DEAD_LETTERED, EventType.REJECTED}
)


class FeedbackEvent(StrEnum):
    """What a provider reported about a message after accepting it (its webhooks), whatever its own spelling."""

    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"


class Bounce(StrEnum):
    """A bounce the provider gave up on (hard) or one it may still retry or that a later send may pass (soft)."""

    HARD = "hard"
    SOFT = "soft"


class Outcome(StrEnum):
    """How one send attempt ended: the outcome classes the README's "Outcome classes" table explains."""

    ACCEPTED = "accepted"
    TRANSIENT = "transient"
    PROVIDER_FAILURE = "provider_failure"
    PERMANENT = "permanent"
    AMBIGUOUS = "ambiguous"


class FailureCause(StrEnum):
    """Why a transient attempt failed: the network on our side, or the provider itself."""

    NETWORK = "network"
    PROVIDER = "provider"
    RATE_LIMIT = "rate_limit"


class HealthState(StrEnum):
    """The `state` of a mercury.ProviderHealth record: a breaker's state, a provider's 429 window, or a worker's
    heartbeat."""

    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"
    THROTTLED = "throttled"
    ALIVE = "alive"


# The states of the fleet's breaker, in the order the dispatchers' gauge numbers them (0, 1, 2).
BREAKER_STATES = (HealthState.CLOSED, HealthState.HALF_OPEN, HealthState.OPEN)


class DeadReason(StrEnum):
    PERMANENT = "permanent"
    EXHAUSTED = "exhausted"
    NO_PROVIDER = "no_provider"
    MALFORMED = "malformed"
    AMBIGUOUS = "ambiguous"
