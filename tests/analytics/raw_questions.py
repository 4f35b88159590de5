"""The reference the rollup-backed questions are held to: each question answered straight from the raw events
and mails with FINAL, as the questions were answered before there were rollups, shaped like
analytics.questions' answers. Two rules are newer than that SQL: a mails row without a time (created_at 0) takes
its acceptance from its `accepted` event, and a bucket whose sends carry no latency has no latency quantiles
(18.16 answered 0 there, current ClickHouse nothing)."""
from clickhouse_driver import Client

from analytics.lifecycle import EVENT_SEQUENCE, params

# Shaped as the questions shape their answers: only the SQL is the reference's own.
from analytics.questions import _number, _ratio, _stats

_LAST_MS = 2**32 * 1000 - 1
IN_WINDOW = """
    created_at >= toDateTime(%(since_s)s) AND created_at < toDateTime(%(until_s)s)
    AND created_at_ms >= %(since_ms)s AND created_at_ms < %(until_ms)s
"""
FROM_START = "created_at >= toDateTime(%(since_s)s) AND created_at_ms >= %(since_ms)s"
_TENANT_MAILS = "SELECT id FROM mails PREWHERE tenant = %(tenant)s"
# Tenant conditions: on mails rows; on events in the window; on events of mails accepted from the window's start.
_ROWS = " AND tenant = %(tenant)s"
_EVENTS = f" AND mail IN ({_TENANT_MAILS})"
_ACCEPTED_EVENTS = f" AND mail IN ({_TENANT_MAILS} AND ({FROM_START} OR created_at = toDateTime(0)))"

_MILESTONES = """
    SELECT mail, %(event_accepted)s AS event, created_at_ms
    FROM (SELECT id AS mail, created_at_ms FROM mails FINAL PREWHERE {window} AND created_at_ms >= 1000{rows})
    UNION ALL
    SELECT mail, event, created_at_ms FROM events FINAL PREWHERE {from_start}{accepted_events}
"""
_DURATIONS = """
    SELECT count(), max(duration_ms), avg(duration_ms), quantilesExact(0.5, 0.95, 0.99)(duration_ms)
    FROM
    (
        SELECT countIf(event = %(event_accepted)s) AS accepted_marks, countIf(event = %(target)s) AS target_marks,
               minIf(created_at_ms, event = %(event_accepted)s) AS accepted_ms,
               toInt64(minIf(created_at_ms, event = %(target)s)) - toInt64(accepted_ms) AS duration_ms
        FROM ({milestones})
        GROUP BY mail
    )
    WHERE accepted_marks > 0 AND target_marks > 0 AND accepted_ms >= %(since_ms)s AND accepted_ms < %(until_ms)s
"""
_UNFINISHED = """
    SELECT mail, min(created_at_ms) AS accepted_ms
    FROM
    (
        SELECT id AS mail, created_at_ms FROM mails FINAL PREWHERE {window} AND created_at_ms >= 1000{rows}
        UNION ALL
        SELECT mail, created_at_ms FROM events FINAL
        PREWHERE event = %(event_accepted)s AND {window}{accepted_events}
    )
    WHERE mail NOT IN (SELECT mail FROM events FINAL PREWHERE event IN %(terminal)s AND {from_start})
    GROUP BY mail
    ORDER BY accepted_ms, mail
    LIMIT %(limit)s
"""
_LAST_EVENTS = f"""
    SELECT mail, argMax(event, ({EVENT_SEQUENCE})), max(created_at_ms),
           argMaxIf(provider, ({EVENT_SEQUENCE}), event = %(event_dispatched)s), countIf(event = %(event_dispatched)s)
    FROM events FINAL
    PREWHERE mail IN %(mails)s AND {FROM_START}
    GROUP BY mail
"""
_PROVIDERS = """
    SELECT provider, countIf(event = %(event_dispatched)s), countIf(event = %(event_sent)s),
           countIf(event = %(event_attempt_failed)s), countIf(event = %(event_sent)s AND latency_ms IS NOT NULL),
           maxIf(latency_ms, event = %(event_sent)s), avgIf(latency_ms, event = %(event_sent)s),
           quantilesExactIf(0.5, 0.95, 0.99)(latency_ms, event = %(event_sent)s)
    FROM events FINAL
    PREWHERE provider != '' AND {window}{events}
    GROUP BY provider
    ORDER BY provider
"""
_TIMELINE = """
    SELECT intDiv(created_at_ms, %(bucket_ms)s) * %(bucket_ms)s AS bucket_start_ms, provider,
           countIf(event = %(event_dispatched)s), countIf(event = %(event_sent)s),
           countIf(event = %(event_attempt_failed)s), countIf(event = %(event_sent)s AND latency_ms IS NOT NULL),
           quantilesExactIf(0.5, 0.95)(latency_ms, event = %(event_sent)s)
    FROM events FINAL
    PREWHERE provider != '' AND {window}{events}
    GROUP BY bucket_start_ms, provider
    ORDER BY bucket_start_ms, provider
"""
_FAILURES = """
    SELECT provider,
           countIf(outcome = %(outcome_transient)s AND cause = %(cause_network)s),
           countIf(outcome = %(outcome_transient)s AND cause = %(cause_provider)s),
           countIf(outcome = %(outcome_transient)s AND cause = %(cause_rate_limit)s),
           countIf(outcome = %(outcome_permanent)s), countIf(outcome = %(outcome_provider_failure)s),
           countIf(outcome = %(outcome_ambiguous)s), count()
    FROM events FINAL
    PREWHERE event = %(event_attempt_failed)s AND {window}{events}
    GROUP BY provider
    ORDER BY provider
"""
_CAUSES = ("network", "provider_outage", "rate_limit", "permanent", "provider_failure", "ambiguous")


def queue_time_stats(client: Client, since_ms: int | None = None, until_ms: int | None = None,
                     tenant: str | None = None) -> dict:
    return _durations(client, "dispatched", since_ms, until_ms, tenant)


def delivery_time_stats(client: Client, since_ms: int | None = None, until_ms: int | None = None,
                        tenant: str | None = None) -> dict:
    return _durations(client, "sent", since_ms, until_ms, tenant)


def unfinished_mails(client: Client, older_than_s: float, now_ms: int, limit: int = 1000,
                     since_ms: int | None = None, tenant: str | None = None) -> list[dict]:
    cutoff_ms = max(0, now_ms - int(older_than_s * 1000))
    values = _values(since_ms, cutoff_ms + 1, tenant, limit=limit)
    accepted = client.execute(_UNFINISHED.format(**_conditions(tenant)), values)
    if not accepted:
        return []
    last = {mail: rest for mail, *rest in client.execute(
        _LAST_EVENTS, {**values, "mails": tuple(mail for mail, _ in accepted)})}
    result = []
    for mail, accepted_ms in accepted:
        last_event, last_event_ms, last_provider, attempts = last.get(mail, (None, None, "", 0))
        result.append({
            "mail": mail, "accepted_at": accepted_ms, "last_event": last_event, "last_event_at": last_event_ms,
            "last_provider": last_provider or None, "attempts": attempts, "age_ms": now_ms - accepted_ms,
        })
    return result


def provider_stats(client: Client, since_ms: int | None = None, until_ms: int | None = None,
                   tenant: str | None = None) -> list[dict]:
    rows = client.execute(_PROVIDERS.format(**_conditions(tenant)), _values(since_ms, until_ms, tenant))
    return [
        {"provider": provider, "attempts": attempts, "sent": sent, "failed": failed,
         "success_rate": _ratio(sent, attempts), "failure_rate": _ratio(failed, attempts),
         "latency_ms": _stats(timed, latency_max, latency_avg, quantiles)}
        for provider, attempts, sent, failed, timed, latency_max, latency_avg, quantiles in rows
    ]


def provider_timeline(client: Client, bucket_s: int = 60, since_ms: int | None = None, until_ms: int | None = None,
                      tenant: str | None = None) -> list[dict]:
    values = _values(since_ms, until_ms, tenant, bucket_ms=bucket_s * 1000)
    return [
        {"bucket_start": bucket, "provider": provider, "attempts": attempts, "sent": sent, "failed": failed,
         "success_rate": _ratio(sent, attempts), "failure_rate": _ratio(failed, attempts),
         "latency_p50_ms": _number(p50) if timed else None, "latency_p95_ms": _number(p95) if timed else None}
        for bucket, provider, attempts, sent, failed, timed, (p50, p95)
        in client.execute(_TIMELINE.format(**_conditions(tenant)), values)
    ]


def failure_causes(client: Client, since_ms: int | None = None, until_ms: int | None = None,
                   tenant: str | None = None) -> list[dict]:
    result = []
    for provider, *counts, total in client.execute(_FAILURES.format(**_conditions(tenant)),
                                                   _values(since_ms, until_ms, tenant)):
        result.append({"provider": provider or None, **dict(zip(_CAUSES, counts)), "other": total - sum(counts),
                       "total": total})
    return result


def _durations(client: Client, target: str, since_ms: int | None, until_ms: int | None, tenant: str | None) -> dict:
    conditions = _conditions(tenant)
    query = _DURATIONS.format(milestones=_MILESTONES.format(**conditions))
    (row,) = client.execute(query, _values(since_ms, until_ms, tenant, target=target))
    return _stats(*row)


def _conditions(tenant: str | None) -> dict[str, str]:
    mine = tenant is not None
    return {"window": IN_WINDOW, "from_start": FROM_START, "rows": _ROWS * mine, "events": _EVENTS * mine,
            "accepted_events": _ACCEPTED_EVENTS * mine}


def _values(since_ms: int | None, until_ms: int | None, tenant: str | None, **values: object) -> dict[str, object]:
    since = max(0, since_ms or 0)
    until = min(_LAST_MS, _LAST_MS if until_ms is None else until_ms)
    return params(since_ms=since, until_ms=until, since_s=since // 1000,
                  until_s=min(until // 1000 + 1, _LAST_MS // 1000), tenant=tenant, **values)
