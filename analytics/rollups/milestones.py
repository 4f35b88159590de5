"""Per mail, filed under the minute it was accepted: the rows behind queue_time_stats, delivery_time_stats and
unfinished_mails.

A mail counts as accepted from its `mails` row or an `accepted` event, whichever came first; a row without a
time (created_at 0, left out by its producer) takes its acceptance from the event the dispatcher stamped. Its
progress is read from its events from an hour before its acceptance on (hosts' clocks differ a little):
first `dispatched`, first `sent`, whether a terminal event came, its last event, the provider it was last
dispatched to, and how many dispatches. The first dispatch and send of a mail never change once seen (a mail's
events arrive in the order they were recorded), so a settled row is final for what it has; a row still
waiting for one of them is read again from the raw tables while newer events of its mail are unsettled.
"""
from clickhouse_driver import Client

from analytics import tenants
from analytics.lifecycle import EVENT_SEQUENCE, params
from analytics.rollups.spans import Spans, ranges_condition

TABLE = "mail_milestones"
COLUMNS = (
    "mail", "tenant", "accepted_ms", "dispatched_ms", "sent_ms", "finished", "last_event", "last_event_ms",
    "last_provider", "attempts",
)
CLOCK_SLACK_MS = 3_600_000
# A time no acceptance has: what a row without a time stands for among the acceptances.
_NEVER = 2**64 - 1
# A row that may still change: its mail has not been dispatched, sent or finished yet.
WAITING = "(dispatched_ms = 0 OR sent_ms = 0 OR finished = 0)"


def acceptances_sql(mails_condition: str, events_condition: str) -> str:
    """(mail, accepted_ms, tenant) of the mails whose acceptance rows or events match the conditions (on `mails`
    and on `events`), the tenant as stored now ('' for a mail without a row; a row without a time names its
    tenant from wherever it is). Copies agree, so no FINAL."""
    return f"""
        SELECT mail, min(at) AS accepted_ms, max(owner) AS tenant
        FROM
        (
            SELECT id AS mail, created_at_ms AS at, tenant AS owner FROM mails
            PREWHERE ({mails_condition}) AND created_at_ms >= 1000
            UNION ALL
            SELECT id, {_NEVER}, tenant FROM mails PREWHERE created_at < toDateTime(1)
            UNION ALL
            SELECT mail, created_at_ms, '' FROM events PREWHERE event = %(event_accepted)s AND ({events_condition})
        )
        GROUP BY mail
        HAVING accepted_ms < {_NEVER}
    """


def raw_sql(candidates: str, events_from_ms: int) -> str:
    """Milestone rows (COLUMNS) of `candidates` (a query of mail, accepted_ms, tenant), their progress read from
    `events` (one row per event) from `events_from_ms` on."""
    progress = f"""
        SELECT mail,
               minIf(created_at_ms, event = %(event_dispatched)s) AS dispatched_ms,
               minIf(created_at_ms, event = %(event_sent)s) AS sent_ms,
               toUInt8(countIf(event IN %(terminal)s) > 0) AS finished,
               argMax(event, ({EVENT_SEQUENCE})) AS last_event,
               max(created_at_ms) AS last_event_ms,
               argMaxIf(provider, ({EVENT_SEQUENCE}), event = %(event_dispatched)s) AS last_provider,
               toUInt32(countIf(event = %(event_dispatched)s)) AS attempts
        FROM
        (
            SELECT mail, id, event, created_at_ms, provider, kafka_offset FROM events
            PREWHERE mail IN (SELECT mail FROM ({candidates}))
                AND created_at >= toDateTime({max(0, events_from_ms) // 1000})
            LIMIT 1 BY mail, id
        )
        GROUP BY mail
    """
    return (f"SELECT {', '.join(COLUMNS)} FROM ({candidates}) AS candidates"
            f" ANY LEFT JOIN ({progress}) AS progress USING mail")


def rows(client: Client, since_ms: int, until_ms: int, tenant: str | None) -> tuple[str, dict[str, object]]:
    """A query for the milestone rows of the mails accepted in [since_ms, until_ms) as `tenant` sees them (None:
    every tenant), with its parameters. Settled rows come from the table, except those still waiting whose mail
    has unsettled events; those, and the mails accepted in unsettled minutes, come from the raw tables. Blocks
    for one small query (the settled state)."""
    spans = Spans.load(client, since_ms)
    window = f"accepted_ms >= {since_ms} AND accepted_ms < {until_ms}"
    condition = f"{spans.table_condition(until_ms, whole=False)} AND {window}"
    newer = f"SELECT mail FROM events PREWHERE {ranges_condition(spans.unsettled_ranges())}"
    stale = f"{WAITING} AND mail IN ({newer})"
    unsettled = ranges_condition(spans.raw_ranges(until_ms, whole=False))
    candidates = f"""
        SELECT mail, accepted_ms, tenant FROM ({acceptances_sql(unsettled, unsettled)})
        UNION ALL
        SELECT mail, accepted_ms, tenant FROM {TABLE} PREWHERE {condition} WHERE {stale}
    """
    mine = condition if tenant is None else f"{condition} AND tenant IN (%(tenant)s, '')"
    query = f"""
        SELECT * FROM
        (
            SELECT {', '.join(COLUMNS)} FROM {TABLE} PREWHERE {mine} WHERE NOT ({stale})
            UNION ALL
            {raw_sql(candidates, since_ms - CLOCK_SLACK_MS)}
        )
        WHERE {window}
    """
    if tenant is None:
        return query, params()
    return f"{query} AND {tenants.claimed(TABLE, 'mail', condition)}", params(tenant=tenant)
