"""The shared vocabulary as the SQL sees it: query parameters, so no query spells an event name itself,
the one definition of the order of a mail's events, and the window bounds every question filters with."""
from schemas.vocabulary import TERMINAL_EVENTS, Bounce, EventType, FailureCause, FeedbackEvent, Outcome

SQL_PARAMS: dict[str, object] = {
    # A tuple renders as (...) for IN.
    "terminal": tuple(sorted(event.value for event in TERMINAL_EVENTS)),
    **{f"event_{event.value}": event.value for event in EventType},
    **{f"outcome_{outcome.value}": outcome.value for outcome in Outcome},
    **{f"cause_{cause.value}": cause.value for cause in FailureCause},
    **{f"feedback_{event.value}": event.value for event in FeedbackEvent},
    **{f"bounce_{bounce.value}": bounce.value for bounce in Bounce},
}

# The order of one mail's events, for ORDER BY and argMax over (id, event, created_at_ms, kafka_offset).
# A fast provider puts several events in one millisecond. Then acceptance comes first and a terminal
# event last; in between, the order they were appended to the mail's partition (events are keyed by mail
# id, so a failure and the failover dispatch that follows it keep their order). The id settles the rest.
EVENT_SEQUENCE = (
    "created_at_ms, multiIf(event = %(event_accepted)s, 0, event IN %(terminal)s, 2, 1), kafka_offset, id"
)

# Rows in the window [since, until); the created_at bounds let the server skip whole days (partitions) outside it.
IN_WINDOW = """
    created_at >= toDateTime(%(since_s)s) AND created_at < toDateTime(%(until_s)s)
    AND created_at_ms >= %(since_ms)s AND created_at_ms < %(until_ms)s
"""


def params(**values: object) -> dict[str, object]:
    """Query parameters: the vocabulary plus the caller's values."""
    return {**SQL_PARAMS, **values}
