"""The operators' questions, as SQL with thin Python wrappers returning plain dicts.

The questions over mails and provider activity read the rollups (analytics.rollups): settled minutes from
the pre-aggregated tables, the rest of the window (its last minutes, a partial minute at either end, minutes
a late row touched) from the raw tables through the same SQL that settles them, so a month costs about what a
few minutes of raw events do, and the answer is what the raw events say. Timeline buckets that are not whole
minutes are read from the raw events alone. The per-mail views (trace, breakers, feedback, rejections) read the raw
tables: every raw read uses FINAL, so a re-delivered row never counts twice, and filters with PREWHERE, which
drops rows before FINAL merges them (copies of a row are identical, so filtering first never separates them).
Values from the shared vocabulary and from callers are query parameters, never formatted into the SQL.

A mail counts as accepted from its `mails` row or from an `accepted` event, whichever came first, so mails
from outside producers that never passed the gateway are counted too (a row without a time takes the event's).
Every question over time takes a window [since_ms, until_ms); tables are partitioned by day, and each window
bounds the partition column, so a question reads only the days it covers.

Every question about mails or events takes a tenant (analytics.tenants): None answers for every tenant,
a tenant name only about that tenant's mails and their events. Fleet-wide views (breakers, provider
feedback) take none.

Quantiles are exact (the value at rank floor(level * n) of the sorted values, no interpolation, as
quantilesExact picks it; send latencies come from histograms with one count per distinct millisecond).
quantileTiming would clamp at 30 s, and quantilesTDigest answers differently on 18.16 and on current
ClickHouse.
"""
import math

from clickhouse_driver import Client

from analytics import tenants
from analytics.lifecycle import EVENT_SEQUENCE, IN_WINDOW, params
from analytics.rollups import milestones, provider_slots
from analytics.rollups.spans import MINUTE_MS
from analytics.rows import LAST_MS
from analytics.store import QUEUED, SENDING, MailStore
from schemas import events
from schemas.vocabulary import BREAKER_STATES, TERMINAL_EVENTS, EventType, HealthState

_DURATIONS = """
    SELECT count(), max(duration), avg(duration), quantilesExact(0.5, 0.95, 0.99)(duration)
    FROM (SELECT toInt64({target}) - toInt64(accepted_ms) AS duration FROM ({milestones}) WHERE {target} != 0)
"""

_UNFINISHED = """
    SELECT mail, accepted_ms, last_event, last_event_ms, last_provider, attempts
    FROM ({milestones})
    WHERE finished = 0
    ORDER BY accepted_ms, mail
    LIMIT %(limit)s
"""

_FAILURE_COUNTS = """
    SELECT provider, sum(network), sum(provider_outage), sum(rate_limit), sum(permanent), sum(provider_failure),
           sum(ambiguous), sum(failed)
    FROM ({slots})
    GROUP BY provider
    HAVING sum(failed) > 0
    ORDER BY provider
"""

# Attempts and send latencies per group (provider, or bucket and provider) from the slots: each slot's counts
# ride on the first of its latency values (LEFT ARRAY JOIN keeps a slot without any). The quantile at `level`
# is the value at rank floor(level * n): the first value whose running count passes that rank, as
# quantilesExact picks it from the sorted values.
_ACTIVITY = """
    SELECT {keys}, attempts, sent, failed, timed, latency_max, latency_avg, [{quantiles}]
    FROM
    (
        SELECT {keys}, sum(attempt_count) AS attempts, sum(sent_count) AS sent, sum(failed_count) AS failed,
               sum(n) AS timed, maxIf(latency, n > 0) AS latency_max, sum(latency * n) / timed AS latency_avg,
               arraySort(groupArrayIf(latency, n > 0)) AS ordered,
               arrayCumSum(arraySort((c, v) -> v, groupArrayIf(n, n > 0), groupArrayIf(latency, n > 0))) AS ranks
        FROM
        (
            SELECT {keys}, latency, sum(if(i <= 1, attempts, 0)) AS attempt_count,
                   sum(if(i <= 1, sent, 0)) AS sent_count, sum(if(i <= 1, failed, 0)) AS failed_count,
                   sum(times) AS n
            FROM ({slots})
            LEFT ARRAY JOIN latencies AS latency, latency_counts AS times, arrayEnumerate(latencies) AS i
            WHERE provider != ''
            GROUP BY {keys}, latency
        )
        GROUP BY {keys}
    )
    ORDER BY {keys}
"""
_QUANTILE = "ordered[arrayFirstIndex(r -> r > toUInt64(floor({level} * timed)), ranks)]"

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

# Refused requests per field refused, most first. A batch names its mail's position (`mails[3].recipients`): the
# positions are left out (`mails[].recipients`), so one field of a batch's mails is one row. An over-rate summary
# (ingest.keys.over_rate) stands for its `count` refused requests, any other rejection for one. A field's name may
# be a client's (an unknown key) and a reason quotes it: both are cut short here, and only the most refused fields
# leave the server, so a flood of refusals with long made-up names costs the gateway nothing.
_REFUSED = f"""
    SELECT id, mail, created_at_ms,
           substringUTF8(replaceRegexpAll(visitParamExtractString(blob, 'field'), %(position)s, '[]'), 1, 128) AS field,
           greatest(visitParamExtractUInt(blob, 'count'), 1) AS requests,
           substringUTF8(visitParamExtractString(blob, 'reason'), 1, 1000) AS reason
    FROM events FINAL
    PREWHERE event = %(event_rejected)s AND {IN_WINDOW}{tenants.REJECTIONS}
"""
_REJECTIONS = f"""
    SELECT field, sum(requests) AS refused, argMax(reason, (created_at_ms, id)), argMax(mail, (created_at_ms, id)),
           max(created_at_ms)
    FROM ({_REFUSED})
    GROUP BY field
    ORDER BY refused DESC, field
    LIMIT %(most)s
"""
_REJECTED_TOTAL = f"SELECT sum(requests) FROM ({_REFUSED})"
# A position in a field's name: `[3]`.
_POSITION = r"\[[0-9]+\]"
# The fields `rejections` names, most refused first; its total counts every one.
MAX_REJECTED_FIELDS = 100

# The breaker states of mercury.ProviderHealth; `throttled` records are 429 windows, not breaker states.
_BREAKER_STATES = tuple(str(state) for state in BREAKER_STATES)

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
# The causes `failure_causes` counts, in the order its answer gives them (the gateway documents them from here).
CAUSES = ("network", "provider_outage", "rate_limit", "permanent", "provider_failure", "ambiguous")
_TERMINAL = {event.value for event in TERMINAL_EVENTS}
# The events whose message_id is the provider's id of this mail's send (as analytics.store reads them).
_SENDING = frozenset(SENDING)


def mail_trace(client: Client, mail_id: str, tenant: str | None = None) -> dict | None:
    """A mail's whole life: when it entered, whether it was rejected, the providers tried, why attempts
    failed, where it is now (its latest event, or once a provider reported on its send what the reports say:
    analytics.store.MailStore.feedback_status), and what the providers reported afterwards (joined by their
    message ids).
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
    # Once a provider reported on the send, the status is what its reports say, as GET /mails/<id> shows it.
    reported = store.feedback_status({mail_id: message_ids}).get(mail_id) if feedback else None
    return {
        "mail": mail,
        "accepted_at": min(accepted) if accepted else None,
        "rejected": any(e["event"] == EventType.REJECTED for e in events),
        "providers_tried": providers_tried,
        "failures": [
            {key: event[key] for key in ("created_at", "provider", "outcome", "cause", "status")}
            for event in events if event["event"] == EventType.ATTEMPT_FAILED
        ],
        "status": reported["status"] if reported else events[-1]["event"] if events else QUEUED,
        "bounce": reported["bounce"] if reported else None,
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
    since, until = _bounds(since_ms, cutoff_ms + 1)
    query, values = milestones.rows(client, since, until, tenant)
    rows = client.execute(_UNFINISHED.format(milestones=query), {**values, "limit": limit})
    return [
        {
            "mail": mail, "accepted_at": accepted_ms, "last_event": last_event or None,
            "last_event_at": last_event_ms if last_event else None, "last_provider": last_provider or None,
            "attempts": attempts, "age_ms": now_ms - accepted_ms,
        }
        for mail, accepted_ms, last_event, last_event_ms, last_provider, attempts in rows
    ]


def queue_time_stats(
    client: Client, since_ms: int | None = None, until_ms: int | None = None, tenant: str | None = None,
) -> dict:
    """Accepted → first dispatched, over mails accepted in the window: count, max/avg/p50/p95/p99 ms."""
    return _duration_stats(client, "dispatched_ms", since_ms, until_ms, tenant)


def delivery_time_stats(
    client: Client, since_ms: int | None = None, until_ms: int | None = None, tenant: str | None = None,
) -> dict:
    """Accepted → sent, over mails accepted in the window: count, max/avg/p50/p95/p99 ms."""
    return _duration_stats(client, "sent_ms", since_ms, until_ms, tenant)


def provider_stats(
    client: Client, since_ms: int | None = None, until_ms: int | None = None, tenant: str | None = None,
) -> list[dict]:
    """Per provider in the window: attempts (dispatched), sent, failed (attempt_failed), their rates over
    attempts, and the latency of sent attempts as the provider adapters measured it."""
    rows = _provider_activity(client, since_ms, until_ms, tenant, "provider", MINUTE_MS, (0.5, 0.95, 0.99))
    return [
        {
            "provider": provider, "attempts": attempts, "sent": sent, "failed": failed,
            "success_rate": _ratio(sent, attempts), "failure_rate": _ratio(failed, attempts),
            "latency_ms": _stats(*latencies),
        }
        for provider, attempts, sent, failed, *latencies in rows
    ]


def provider_timeline(
    client: Client, bucket_s: int = 60, since_ms: int | None = None, until_ms: int | None = None,
    tenant: str | None = None,
) -> list[dict]:
    """Attempts, sent and failed per provider per time bucket (start in ms), with their rates and the p50/p95
    latency of the bucket's sends, for charts. Buckets of whole minutes read the rollups; others the raw events."""
    if bucket_s < 1:
        raise ValueError(f"bucket_s must be at least 1, got {bucket_s}")
    rows = _provider_activity(client, since_ms, until_ms, tenant, "slot, provider", int(bucket_s) * 1000, (0.5, 0.95))
    return [
        {
            "bucket_start": bucket, "provider": provider, "attempts": attempts, "sent": sent, "failed": failed,
            "success_rate": _ratio(sent, attempts), "failure_rate": _ratio(failed, attempts),
            "latency_p50_ms": _number(p50) if timed else None, "latency_p95_ms": _number(p95) if timed else None,
        }
        for bucket, provider, attempts, sent, failed, timed, _, _, (p50, p95) in rows
    ]


def failure_causes(
    client: Client, since_ms: int | None = None, until_ms: int | None = None, tenant: str | None = None,
) -> list[dict]:
    """Failed attempts per provider by cause: network, provider outage, rate limit (the transient
    causes), message permanent, provider failure (auth, account, quota), ambiguous; `other` counts
    failures that fit none of them (a transient attempt without a known cause)."""
    slots, values = provider_slots.rows(client, *_bounds(since_ms, until_ms), tenant, MINUTE_MS)
    result = []
    for provider, *counts, total in client.execute(_FAILURE_COUNTS.format(slots=slots), values):
        causes = dict(zip(CAUSES, counts))
        result.append({"provider": provider or None, **causes, "other": total - sum(counts), "total": total})
    return result


def breakers(client: Client, since_ms: int | None = None, until_ms: int | None = None, limit: int = 10_000) -> dict:
    """Each provider's breaker as last recorded (with a 429 window still to come) and every change in the
    window, oldest first: opens, probe claims (half_open, naming the worker), closes, throttle windows."""
    now_ms = events.now_ms()
    current = client.execute(_BREAKERS_NOW, params(breaker_states=_BREAKER_STATES,
                                                   throttled=str(HealthState.THROTTLED)))
    providers = [
        {
            # A provider only ever throttled has no breaker record: its breaker never left `closed`.
            "provider": provider, "state": state or str(HealthState.CLOSED), "changed_at": changed_at or None,
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


def rejections(
    client: Client, since_ms: int | None = None, until_ms: int | None = None, tenant: str | None = None,
) -> dict:
    """Requests refused in the window (`rejected` events: the gateway's validation and over-rate refusals, and the
    dispatcher's refusal of a mail): how many, and per field refused (null when the refusal named none), most
    first, how many, the last one's reason, the id it was recorded under (its trace) and when it was recorded.
    An over-rate summary counts the requests it stands for and is recorded up to 10 s after them. Field names are
    cut at 128 characters and reasons at 1,000."""
    window = _window(since_ms, until_ms, position=_POSITION, most=MAX_REJECTED_FIELDS)
    [(total,)] = client.execute(*tenants.scoped(_REJECTED_TOTAL, tenant, **window))
    fields = [
        {"field": field or None, "count": count, "last_reason": reason or None, "last_mail": mail, "last_at": at}
        for field, count, reason, mail, at in client.execute(*tenants.scoped(_REJECTIONS, tenant, **window))
    ]
    return {"total": total, "fields": fields}


def _duration_stats(
    client: Client, target: str, since_ms: int | None, until_ms: int | None, tenant: str | None,
) -> dict:
    query, values = milestones.rows(client, *_bounds(since_ms, until_ms), tenant)
    (row,) = client.execute(_DURATIONS.format(target=target, milestones=query), values)
    return _stats(*row)


def _provider_activity(
    client: Client, since_ms: int | None, until_ms: int | None, tenant: str | None, keys: str, slot_ms: int,
    levels: tuple[float, ...],
) -> list[tuple]:
    """Per `keys` (provider, or slot and provider), in their order: attempts, sent, failed, and the send latency
    stats (count, max, avg, quantiles at `levels`)."""
    slots, values = provider_slots.rows(client, *_bounds(since_ms, until_ms), tenant, slot_ms)
    quantiles = ", ".join(_QUANTILE.format(level=level) for level in levels)
    return client.execute(_ACTIVITY.format(keys=keys, slots=slots, quantiles=quantiles), values)


def _bounds(since_ms: int | None, until_ms: int | None) -> tuple[int, int]:
    """[since_ms, until_ms) with no start meaning from the beginning and no end meaning no end."""
    return max(0, since_ms or 0), min(LAST_MS, LAST_MS if until_ms is None else until_ms)


def _window(since_ms: int | None, until_ms: int | None, **values: object) -> dict[str, object]:
    """Query parameters for [since_ms, until_ms): no start means from the beginning, no end means no end."""
    since, until = _bounds(since_ms, until_ms)
    # until_s: the first whole second after the window (created_at may be DateTime64, with milliseconds).
    until_s = min(until // 1000 + 1, LAST_MS // 1000)
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
