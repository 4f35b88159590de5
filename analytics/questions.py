"""The operators' questions, as SQL (all of it here) with thin Python wrappers returning plain dicts.

Every query reads with FINAL, so a re-delivered row never counts twice, and filters with PREWHERE: after
FINAL, a WHERE runs only once every row of the parts read has been merged, while PREWHERE drops rows
before (copies of a row are identical, so filtering first never separates them). Values from the shared
vocabulary and from callers are query parameters, never formatted into the SQL. A mail counts as
accepted from its `mails` row or from an `accepted` event, whichever came first, so mails from outside
producers that never passed the gateway are counted too.

Every question over time takes a window [since_ms, until_ms). Tables are partitioned by day, and each
window also bounds created_at (the partition column), so a question reads only the days it covers.

Every question about mails or events takes a tenant (analytics.tenants): None answers for every tenant,
a tenant name only about that tenant's mails and their events. Fleet-wide views (breakers, provider
feedback) take none.

Quantiles are exact (quantilesExact: the value at rank floor(level * n) of the sorted durations, no
interpolation). quantileTiming would clamp at 30 s, and quantilesTDigest answers differently on 18.16
and on current ClickHouse; exact quantiles cost memory in proportion to the rows in the window, so
callers over a long history pass a window.
"""
import math

from clickhouse_driver import Client

from analytics import tenants
from analytics.lifecycle import EVENT_SEQUENCE, FROM_START, IN_WINDOW, params
from analytics.store import QUEUED, MailStore
from schemas import events
from schemas.vocabulary import TERMINAL_EVENTS, EventType


# The milestones of mails accepted in the window: their events, and their mails row standing in for an
# `accepted` event. (The mails branch renames id in a subquery: an alias named like a column replaces
# that column everywhere.) No event of such a mail precedes its acceptance, hence the events' bound.
_MILESTONES = f"""
    SELECT mail, '' AS id, %(event_accepted)s AS event, created_at_ms, toUInt64(0) AS kafka_offset,
           '' AS provider, 0 AS is_event
    FROM (SELECT id AS mail, created_at_ms FROM mails FINAL PREWHERE {IN_WINDOW}{tenants.MAILS})
    UNION ALL
    SELECT mail, id, event, created_at_ms, kafka_offset, provider, 1 AS is_event
    FROM events FINAL
    PREWHERE {FROM_START}{tenants.EVENTS_ACCEPTED_FROM_START}
"""

_DURATION_STATS = f"""
    SELECT count(), max(duration_ms), avg(duration_ms), quantilesExact(0.5, 0.95, 0.99)(duration_ms)
    FROM
    (
        SELECT
            countIf(event = %(event_accepted)s) AS accepted_marks,
            countIf(event = %(target)s) AS target_marks,
            minIf(created_at_ms, event = %(event_accepted)s) AS accepted_ms,
            toInt64(minIf(created_at_ms, event = %(target)s)) - toInt64(accepted_ms) AS duration_ms
        FROM ({_MILESTONES})
        GROUP BY mail
    )
    WHERE accepted_marks > 0 AND target_marks > 0 AND accepted_ms >= %(since_ms)s AND accepted_ms < %(until_ms)s
"""

# Unfinished mails in two steps, because grouping every event of a long window by mail is the costliest
# thing a question could do: first the oldest mails accepted in the window that reached no terminal event
# (two narrow scans), then the last event of just those.
_UNFINISHED = f"""
    SELECT mail, min(created_at_ms) AS accepted_ms
    FROM
    (
        SELECT id AS mail, created_at_ms FROM mails FINAL PREWHERE {IN_WINDOW}{tenants.MAILS}
        UNION ALL
        SELECT mail, created_at_ms FROM events FINAL
        PREWHERE event = %(event_accepted)s AND {IN_WINDOW}{tenants.EVENTS_ACCEPTED_FROM_START}
    )
    WHERE mail NOT IN (SELECT mail FROM events FINAL PREWHERE event IN %(terminal)s AND {FROM_START})
    GROUP BY mail
    ORDER BY accepted_ms, mail
    LIMIT %(limit)s
"""

_LAST_EVENTS = f"""
    SELECT
        mail,
        argMax(event, ({EVENT_SEQUENCE})),
        max(created_at_ms),
        argMaxIf(provider, ({EVENT_SEQUENCE}), event = %(event_dispatched)s),
        countIf(event = %(event_dispatched)s)
    FROM events FINAL
    PREWHERE mail IN %(mails)s AND {FROM_START}
    GROUP BY mail
"""

_PROVIDER_STATS = f"""
    SELECT
        provider,
        countIf(event = %(event_dispatched)s) AS attempts,
        countIf(event = %(event_sent)s) AS sent,
        countIf(event = %(event_attempt_failed)s) AS failed,
        countIf(event = %(event_sent)s AND latency_ms IS NOT NULL) AS timed,
        maxIf(latency_ms, event = %(event_sent)s) AS latency_max,
        avgIf(latency_ms, event = %(event_sent)s) AS latency_avg,
        quantilesExactIf(0.5, 0.95, 0.99)(latency_ms, event = %(event_sent)s) AS latency_quantiles
    FROM events FINAL
    PREWHERE provider != '' AND {IN_WINDOW}{tenants.EVENTS}
    GROUP BY provider
    ORDER BY provider
"""

_PROVIDER_TIMELINE = f"""
    SELECT
        intDiv(created_at_ms, %(bucket_ms)s) * %(bucket_ms)s AS bucket_start_ms,
        provider,
        countIf(event = %(event_dispatched)s) AS attempts,
        countIf(event = %(event_sent)s) AS sent,
        countIf(event = %(event_attempt_failed)s) AS failed,
        quantilesExactIf(0.5, 0.95)(latency_ms, event = %(event_sent)s) AS latency_quantiles
    FROM events FINAL
    PREWHERE provider != '' AND {IN_WINDOW}{tenants.EVENTS}
    GROUP BY bucket_start_ms, provider
    ORDER BY bucket_start_ms, provider
"""

_FAILURE_CAUSES = f"""
    SELECT
        provider,
        countIf(outcome = %(outcome_transient)s AND cause = %(cause_network)s) AS network,
        countIf(outcome = %(outcome_transient)s AND cause = %(cause_provider)s) AS provider_outage,
        countIf(outcome = %(outcome_transient)s AND cause = %(cause_rate_limit)s) AS rate_limit,
        countIf(outcome = %(outcome_permanent)s) AS permanent,
        countIf(outcome = %(outcome_provider_failure)s) AS provider_failure,
        countIf(outcome = %(outcome_ambiguous)s) AS ambiguous,
        count() AS total
    FROM events FINAL
    PREWHERE event = %(event_attempt_failed)s AND {IN_WINDOW}{tenants.EVENTS}
    GROUP BY provider
    ORDER BY provider
"""

_TRACE_EVENTS = f"""
    SELECT id, event, created_at_ms, created_by, provider, outcome, cause, status, message_id, latency_ms, blob
    FROM events FINAL
    PREWHERE mail = %(mail)s
    ORDER BY {EVENT_SEQUENCE}
"""

_TRACE_FEEDBACK = """
    SELECT provider, event, bounce, recipient, reason, url, created_at_ms, message_id
    FROM provider_feedback FINAL
    PREWHERE message_id IN %(message_ids)s
    ORDER BY created_at_ms, provider_event_id
"""

_FEEDBACK_COUNTS = f"""
    SELECT
        provider,
        countIf(event = %(feedback_delivered)s) AS delivered,
        countIf(event = %(feedback_bounced)s AND bounce = %(bounce_hard)s) AS hard_bounces,
        countIf(event = %(feedback_bounced)s AND bounce != %(bounce_hard)s) AS soft_bounces,
        countIf(event = %(feedback_complained)s) AS complained,
        countIf(event = %(feedback_opened)s) AS opened,
        countIf(event = %(feedback_clicked)s) AS clicked,
        countIf(event = %(feedback_unsubscribed)s) AS unsubscribed
    FROM provider_feedback FINAL
    PREWHERE {IN_WINDOW}
    GROUP BY provider
    ORDER BY provider
"""

# The breaker states of mercury.ProviderHealth; `throttled` records are 429 windows, not breaker states.
_CLOSED = "closed"
_BREAKER_STATES = (_CLOSED, "open", "half_open")
_THROTTLED = "throttled"

_BREAKERS_NOW = """
    SELECT
        provider,
        argMaxIf(state, (created_at_ms, kafka_offset), state IN %(breaker_states)s),
        maxIf(created_at_ms, state IN %(breaker_states)s),
        argMaxIf(worker, (created_at_ms, kafka_offset), state IN %(breaker_states)s),
        argMaxIf(reason, (created_at_ms, kafka_offset), state IN %(breaker_states)s),
        maxIf(throttled_until_ms, state = %(throttled)s)
    FROM provider_health FINAL
    GROUP BY provider
    ORDER BY provider
"""

_BREAKER_CHANGES = f"""
    SELECT provider, state, created_at_ms, worker, reason, opened_at_ms, probe_owner, throttled_until_ms
    FROM provider_health FINAL
    PREWHERE {IN_WINDOW}
    ORDER BY created_at_ms, kafka_offset
    LIMIT %(limit)s
"""

_BREAKER_FIELDS = ("provider", "state", "changed_at", "worker", "reason", "opened_at", "probe_owner", "throttled_until")
_FEEDBACK_FIELDS = ("provider", "event", "bounce", "recipient", "reason", "url", "created_at", "message_id")
_FEEDBACK_COUNT_FIELDS = (
    "provider", "delivered", "hard_bounces", "soft_bounces", "complained", "opened", "clicked", "unsubscribed",
)

_TRACE_FIELDS = (
    "id", "event", "created_at", "created_by", "provider", "outcome", "cause", "status", "message_id",
    "latency_ms", "blob",
)
# Stored as '' when absent; returned as None.
_OPTIONAL_TEXT = ("provider", "outcome", "cause", "status", "message_id")
_CAUSES = ("network", "provider_outage", "rate_limit", "permanent", "provider_failure", "ambiguous")
_TERMINAL = {event.value for event in TERMINAL_EVENTS}
# The events whose message_id is the provider's id of this mail's send (a duplicate repeats the first send's).
_SENDING = {EventType.SENT.value, EventType.DUPLICATE.value}
# The last millisecond a DateTime column can hold.
_LAST_MS = 2**32 * 1000 - 1


def mail_trace(client: Client, mail_id: str, tenant: str | None = None) -> dict | None:
    """A mail's whole life: when it entered, whether it was rejected, the providers tried, why attempts
    failed, where it is now, and what the providers reported afterwards (joined by their message ids).
    None when nothing is known about the id, or when the mail is not `tenant`'s."""
    store = MailStore(client)
    mail = store.get_mail(mail_id, tenant=tenant)
    if mail is None and tenant is not None and not store.mail_events(mail_id, tenant=tenant):
        return None  # another tenant's, or nothing: only a request this tenant had rejected is its own
    events = [_trace_event(row) for row in client.execute(_TRACE_EVENTS, params(mail=mail_id))]
    if mail is None and not events:
        return None
    accepted = [e["created_at"] for e in events if e["event"] == EventType.ACCEPTED]
    if mail is not None:
        accepted.append(mail["created_at"])
    providers_tried = []
    for event in events:
        if event["event"] == EventType.DISPATCHED and event["provider"] not in providers_tried:
            providers_tried.append(event["provider"])
    finished = [e["created_at"] for e in events if e["event"] in _TERMINAL]
    # Only the pipeline's own events name the provider's message: a client's event could name anyone's.
    message_ids = tuple(sorted({e["message_id"] for e in events if e["message_id"] and e["event"] in _SENDING}))
    feedback = [dict(zip(_FEEDBACK_FIELDS, row)) for row in client.execute(
        _TRACE_FEEDBACK, {"message_ids": message_ids})] if message_ids else []
    return {
        "mail": mail,
        "accepted_at": min(accepted) if accepted else None,
        "rejected": any(e["event"] == EventType.REJECTED for e in events),
        "providers_tried": providers_tried,
        "failures": [
            {key: event[key] for key in ("created_at", "provider", "outcome", "cause", "status")}
            for event in events if event["event"] == EventType.ATTEMPT_FAILED
        ],
        "status": events[-1]["event"] if events else QUEUED,
        "finished_at": finished[0] if finished else None,
        "events": events,
        "feedback": feedback,
    }


def _trace_event(row: tuple) -> dict:
    event = dict(zip(_TRACE_FIELDS, row))
    for key in _OPTIONAL_TEXT:
        event[key] = event[key] or None
    return event


def unfinished_mails(
    client: Client, older_than_s: float, now_ms: int | None = None, limit: int = 1000, since_ms: int | None = None,
    tenant: str | None = None,
) -> list[dict]:
    """Mails accepted since since_ms and at least older_than_s ago with no terminal event yet, oldest first,
    each with its last event (None when no event followed acceptance) and the last provider it was
    dispatched to."""
    now_ms = events.now_ms() if now_ms is None else now_ms
    cutoff_ms = max(0, now_ms - int(older_than_s * 1000))
    window = _window(since_ms, cutoff_ms + 1, limit=limit)
    accepted = client.execute(*tenants.scoped(_UNFINISHED, tenant, **window))
    if not accepted:
        return []
    last = {mail: rest for mail, *rest in client.execute(
        _LAST_EVENTS, {**window, "mails": tuple(mail for mail, _ in accepted)})}
    result = []
    for mail, accepted_ms in accepted:
        last_event, last_event_ms, last_provider, attempts = last.get(mail, (None, None, "", 0))
        result.append({
            "mail": mail, "accepted_at": accepted_ms, "last_event": last_event, "last_event_at": last_event_ms,
            "last_provider": last_provider or None, "attempts": attempts, "age_ms": now_ms - accepted_ms,
        })
    return result


def queue_time_stats(
    client: Client, since_ms: int | None = None, until_ms: int | None = None, tenant: str | None = None,
) -> dict:
    """Accepted → first dispatched, over mails accepted in the window: count, max/avg/p50/p95/p99 ms."""
    return _duration_stats(client, EventType.DISPATCHED, since_ms, until_ms, tenant)


def delivery_time_stats(
    client: Client, since_ms: int | None = None, until_ms: int | None = None, tenant: str | None = None,
) -> dict:
    """Accepted → sent, over mails accepted in the window: count, max/avg/p50/p95/p99 ms."""
    return _duration_stats(client, EventType.SENT, since_ms, until_ms, tenant)


def provider_stats(
    client: Client, since_ms: int | None = None, until_ms: int | None = None, tenant: str | None = None,
) -> list[dict]:
    """Per provider in the window: attempts (dispatched), sent, failed (attempt_failed), their rates over
    attempts, and the latency of sent attempts as the provider adapters measured it."""
    rows = _ask(client, _PROVIDER_STATS, tenant, since_ms, until_ms)
    return [
        {
            "provider": provider, "attempts": attempts, "sent": sent, "failed": failed,
            "success_rate": _ratio(sent, attempts), "failure_rate": _ratio(failed, attempts),
            "latency_ms": _stats(timed, latency_max, latency_avg, quantiles),
        }
        for provider, attempts, sent, failed, timed, latency_max, latency_avg, quantiles in rows
    ]


def provider_timeline(
    client: Client, bucket_s: int = 60, since_ms: int | None = None, until_ms: int | None = None,
    tenant: str | None = None,
) -> list[dict]:
    """Attempts, sent and failed per provider per time bucket (start in ms), with their rates and the p50/p95
    latency of the bucket's sends, for charts."""
    if bucket_s < 1:
        raise ValueError(f"bucket_s must be at least 1, got {bucket_s}")
    rows = _ask(client, _PROVIDER_TIMELINE, tenant, since_ms, until_ms, bucket_ms=int(bucket_s) * 1000)
    result = []
    for bucket, provider, attempts, sent, failed, (p50, p95) in rows:
        result.append({
            "bucket_start": bucket, "provider": provider, "attempts": attempts, "sent": sent, "failed": failed,
            "success_rate": _ratio(sent, attempts), "failure_rate": _ratio(failed, attempts),
            "latency_p50_ms": _number(p50) if sent else None, "latency_p95_ms": _number(p95) if sent else None,
        })
    return result


def failure_causes(
    client: Client, since_ms: int | None = None, until_ms: int | None = None, tenant: str | None = None,
) -> list[dict]:
    """Failed attempts per provider by cause: network, provider outage, rate limit (the transient
    causes), message permanent, provider failure (auth, account, quota), ambiguous; `other` counts
    failures that fit none of them (a transient attempt without a known cause)."""
    rows = _ask(client, _FAILURE_CAUSES, tenant, since_ms, until_ms)
    result = []
    for provider, *counts, total in rows:
        causes = dict(zip(_CAUSES, counts))
        result.append({"provider": provider or None, **causes, "other": total - sum(counts), "total": total})
    return result


def breakers(client: Client, since_ms: int | None = None, until_ms: int | None = None, limit: int = 10_000) -> dict:
    """Each provider's breaker as last recorded (with a 429 window still to come) and every change in the
    window, oldest first: opens, probe claims (half_open, naming the worker), closes, throttle windows."""
    now_ms = events.now_ms()
    current = client.execute(_BREAKERS_NOW, params(breaker_states=_BREAKER_STATES, throttled=_THROTTLED))
    providers = [
        {
            # A provider only ever throttled has no breaker record: its breaker never left `closed`.
            "provider": provider, "state": state or _CLOSED, "changed_at": changed_at or None,
            "worker": worker or None, "reason": reason or None,
            "throttled_until": throttled_until if throttled_until > now_ms else None,
        }
        for provider, state, changed_at, worker, reason, throttled_until in current
    ]
    changes = [dict(zip(_BREAKER_FIELDS, row)) for row in client.execute(
        _BREAKER_CHANGES, _window(since_ms, until_ms, limit=limit))]
    return {"providers": providers, "changes": changes}


def provider_feedback(client: Client, since_ms: int | None = None, until_ms: int | None = None) -> list[dict]:
    """What providers reported in the window, per provider: delivered, hard and soft bounces, complaints,
    opens, clicks, unsubscribes (from their webhooks)."""
    rows = client.execute(_FEEDBACK_COUNTS, _window(since_ms, until_ms))
    return [dict(zip(_FEEDBACK_COUNT_FIELDS, row)) for row in rows]


def _duration_stats(
    client: Client, target: EventType, since_ms: int | None, until_ms: int | None, tenant: str | None,
) -> dict:
    (row,) = _ask(client, _DURATION_STATS, tenant, since_ms, until_ms, target=target.value)
    return _stats(*row)


def _ask(
    client: Client, query: str, tenant: str | None, since_ms: int | None, until_ms: int | None, **values: object,
) -> list[tuple]:
    """Run a question over the window [since_ms, until_ms) for `tenant` (None: every tenant)."""
    window = _window(since_ms, until_ms, **values)
    length = window["until_ms"] - window["since_ms"]
    return client.execute(*tenants.scoped(query, tenant, window_ms=length, **window))


def _window(since_ms: int | None, until_ms: int | None, **values: object) -> dict[str, object]:
    """Query parameters for [since_ms, until_ms): no start means from the beginning, no end means no end."""
    since = max(0, since_ms or 0)
    until = min(_LAST_MS, _LAST_MS if until_ms is None else until_ms)
    # until_s: the first whole second after the window (created_at may be DateTime64, with milliseconds).
    until_s = min(until // 1000 + 1, _LAST_MS // 1000)
    return params(since_ms=since, until_ms=until, since_s=since // 1000, until_s=until_s, **values)


def _stats(count: int, maximum: float, average: float, quantiles: list[float]) -> dict:
    """Empty aggregates are NaN or 0 in ClickHouse; here they are None."""
    if not count:
        return {"count": 0, "max_ms": None, "avg_ms": None, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    p50, p95, p99 = (_number(q) for q in quantiles)
    return {"count": count, "max_ms": maximum, "avg_ms": _number(average), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 3)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None
