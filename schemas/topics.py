"""Topic names, registered once. The retry ladder has one topic per level; its delays are configuration.

Scheduled mails hop through a fixed set of delay topics (each in due-time order, like the ladder) until
their time comes; the health and ledger topics are compacted: only the latest record per key matters, and so
are the three control topics every gateway and worker follows (API keys, the provider registry and the
configurations). Provider webhooks land on the feedback topic, keyed by the provider's message id.
"""
import os
from collections.abc import Mapping

REQUESTS = "mail.requests"
EVENTS = "mail.events"
DEAD = "mail.dead"
HEALTH = "mail.health"
LEDGER = "mail.ledger"
FEEDBACK = "mail.feedback"
API_KEYS = "mail.api-keys"
PROVIDERS = "mail.providers"
CONFIGURATIONS = "mail.configurations"
RETRY_PREFIX = "mail.retry."
SCHEDULE_PREFIX = "mail.schedule."
SCHEDULE_DELAYS: tuple[int, ...] = (1, 5, 30, 300, 3600)
COMPACTED = frozenset({HEALTH, LEDGER, API_KEYS, PROVIDERS, CONFIGURATIONS})
# Small topics read whole by every process: one partition keeps their order total.
SINGLE_PARTITION = frozenset({HEALTH, API_KEYS, PROVIDERS, CONFIGURATIONS})


def retry_delays(env: Mapping[str, str] = os.environ) -> list[float]:
    """Seconds each retry level waits, from MERCURY_RETRY_DELAYS (comma separated, ascending)."""
    raw = env.get("MERCURY_RETRY_DELAYS", "5,30,120,600")
    delays = [float(part) for part in raw.split(",") if part.strip()]
    if not delays or any(d <= 0 for d in delays):
        raise ValueError(f"MERCURY_RETRY_DELAYS must be positive numbers, got {raw!r}")
    return delays


def retry_topic(level: int) -> str:
    return f"{RETRY_PREFIX}{level}"


def retry_topics(env: Mapping[str, str] = os.environ) -> list[str]:
    return [retry_topic(level) for level in range(len(retry_delays(env)))]


def schedule_topic(delay_s: int) -> str:
    return f"{SCHEDULE_PREFIX}{delay_s}"


def schedule_delay_s(topic: str) -> int:
    return int(topic.removeprefix(SCHEDULE_PREFIX))


def schedule_hop(remaining_s: float) -> str | None:
    """The schedule topic a mail due in `remaining_s` waits on next: the longest delay that fits, if any."""
    fitting = [delay for delay in SCHEDULE_DELAYS if delay <= remaining_s]
    return schedule_topic(fitting[-1]) if fitting else None


def schedule_topics() -> list[str]:
    return [schedule_topic(delay) for delay in SCHEDULE_DELAYS]


def all_topics(env: Mapping[str, str] = os.environ) -> list[str]:
    """Every topic, with as many retry levels as the environment's ladder has."""
    return [REQUESTS, EVENTS, DEAD, HEALTH, LEDGER, FEEDBACK, API_KEYS, PROVIDERS, CONFIGURATIONS,
            *retry_topics(env), *schedule_topics()]
