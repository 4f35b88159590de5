"""Provider activity per slot, the rows behind provider_stats, provider_timeline and failure_causes.

A slot is a minute in `provider_minutes` and a bucket in a timeline. One row per slot, tenant and provider:
attempts (`dispatched`), sends, failures in total and by cause, and the send latencies as a histogram (each
distinct millisecond value with its count), so quantiles stay exact however many rows are summed. Every event
with a provider counts (a provider seen only in other events still gets its row, as in the raw answers), and
failures without one too (under provider ''). An event of a mail that had no stored row keeps its mail id in
`orphan`, so its tenant can claim it once the row is stored (analytics.tenants.claimed).
"""
from clickhouse_driver import Client

from analytics import tenants
from analytics.lifecycle import params
from analytics.rollups.spans import MINUTE_MS, Spans, ranges_condition

TABLE = "provider_minutes"
COLUMNS = (
    "slot", "tenant", "provider", "orphan", "attempts", "sent", "failed", "network", "provider_outage", "rate_limit",
    "permanent", "provider_failure", "ambiguous", "latencies", "latency_counts",
)

_EVENTS = "(provider != '' OR event = %(event_attempt_failed)s)"


def raw_sql(condition: str, attributed: bool = True) -> str:
    """The slot rows of the events matching `condition`, from `events` (one row per event: a re-delivered event
    counts once), each attributed to its mail's tenant as stored now; without `attributed`, to none (the
    operator's view: finding the rows of the mails costs more than the events). Takes `slot_ms`."""
    where = f"{_EVENTS} AND ({condition})"
    events = f"""
        SELECT intDiv(created_at_ms, %(slot_ms)s) * %(slot_ms)s AS slot, mail, event, provider, outcome, cause,
               latency_ms{"" if attributed else ", '' AS tenant"}
        FROM events
        PREWHERE {where}
        LIMIT 1 BY mail, id
    """
    if attributed:
        owners = tenants.of_mails(f"SELECT mail FROM events PREWHERE {where}")
        source = f"({events}) AS attempts ANY LEFT JOIN ({owners}) AS owners USING mail"
        orphan = "if(tenant = '', mail, '')"
    else:
        source, orphan = f"({events})", "''"
    return f"""
        SELECT slot, tenant, provider, orphan,
               sum(dispatches) AS attempts, sum(sends) AS sent, sum(failures) AS failed, sum(networks) AS network,
               sum(outages) AS provider_outage, sum(rate_limits) AS rate_limit, sum(permanents) AS permanent,
               sum(provider_failures) AS provider_failure, sum(ambiguities) AS ambiguous,
               groupArrayIf(latency, timed > 0) AS latencies, groupArrayIf(timed, timed > 0) AS latency_counts
        FROM
        (
            SELECT slot, tenant, provider, {orphan} AS orphan, ifNull(latency_ms, 0) AS latency,
                   countIf(event = %(event_dispatched)s AND provider != '') AS dispatches,
                   countIf(event = %(event_sent)s AND provider != '') AS sends,
                   countIf(event = %(event_attempt_failed)s) AS failures,
                   countIf(event = %(event_attempt_failed)s AND outcome = %(outcome_transient)s
                           AND cause = %(cause_network)s) AS networks,
                   countIf(event = %(event_attempt_failed)s AND outcome = %(outcome_transient)s
                           AND cause = %(cause_provider)s) AS outages,
                   countIf(event = %(event_attempt_failed)s AND outcome = %(outcome_transient)s
                           AND cause = %(cause_rate_limit)s) AS rate_limits,
                   countIf(event = %(event_attempt_failed)s AND outcome = %(outcome_permanent)s) AS permanents,
                   countIf(event = %(event_attempt_failed)s AND outcome = %(outcome_provider_failure)s)
                       AS provider_failures,
                   countIf(event = %(event_attempt_failed)s AND outcome = %(outcome_ambiguous)s) AS ambiguities,
                   countIf(event = %(event_sent)s AND provider != '' AND latency_ms IS NOT NULL) AS timed
            FROM {source}
            GROUP BY slot, tenant, provider, orphan, latency
        )
        GROUP BY slot, tenant, provider, orphan
    """


def settled_sql(condition: str) -> str:
    """The slot rows of `provider_minutes` matching `condition` (analytics.rollups.spans.Spans.table_condition);
    takes `slot_ms`, a multiple of a minute."""
    return f"""
        SELECT intDiv(toUInt64(toUInt32(minute)) * 1000, %(slot_ms)s) * %(slot_ms)s AS slot, {", ".join(COLUMNS[1:])}
        FROM {TABLE}
        PREWHERE {condition}
    """


def rows(
    client: Client, since_ms: int, until_ms: int, tenant: str | None, slot_ms: int,
) -> tuple[str, dict[str, object]]:
    """A query for the slot rows of [since_ms, until_ms) as `tenant` sees them (None: every tenant), with its
    parameters: the settled minutes from the rollups, the rest from the raw tables. Slots that are not whole
    minutes come from the raw tables alone. Blocks for one small query (the settled state)."""
    if slot_ms % MINUTE_MS:
        condition, ranges = "0", [(since_ms, until_ms)]
    else:
        spans = Spans.load(client, since_ms)
        condition, ranges = spans.table_condition(until_ms, whole=True), spans.raw_ranges(until_ms, whole=True)
    values = params(slot_ms=slot_ms)
    if tenant is None:
        return f"{settled_sql(condition)} UNION ALL {raw_sql(ranges_condition(ranges), attributed=False)}", values
    mine = f"{condition} AND tenant IN (%(tenant)s, '')"
    query = f"""
        SELECT * FROM ({settled_sql(mine)} UNION ALL {raw_sql(ranges_condition(ranges))})
        WHERE {tenants.claimed(TABLE, "orphan", condition)}
    """
    return query, {**values, "tenant": tenant}
