"""Settling: the rollups of whole minutes, written a while after each minute ends, and again after a late row.

A round settles the minutes from the last settled one up to MARGIN_MS ago, plus every settled minute touched
since it was settled (analytics.rollups.touches). Each table gets the minutes' rows under a fresh version,
computed from the raw tables one row per record; then waiting milestones of mails that have events in these minutes
are touched (their acceptance minute reads raw until it is settled again); then the minutes are marked settled
with the server's clock from before the round read anything, so a row written meanwhile leaves its minute
unclean. Before writing any row a round records its intent on every minute of its ranges, so rows of a round
interrupted before its marks make their minute name two versions, and reads take the latest mark's.

The sink runs the rounds (Settler); the migration that created the tables runs the first one over the whole
history, split by mail id into parts small enough for the server's memory.
"""
import logging
import random
import time
from collections.abc import Callable

from clickhouse_driver import Client
from clickhouse_driver.util.escape import escape_params

from analytics.lifecycle import params
from analytics.rollups import mail_counts, milestones, provider_slots
from analytics.rollups.spans import MARGIN_MS, MINUTE_MS, TABLE, Range, merged, minutes_condition, ranges_condition
from analytics.writer import RETRYABLE, describe

log = logging.getLogger("mercury.analytics.settle")

EVERY_S = 10.0
# One statement per table settles up to this many events; larger rounds are split by mail id.
EVENTS_PER_PART = 2_000_000

_SERVER_NOW_S = "SELECT toUInt32(now())"
_THROUGH = f"SELECT count(), max(toUInt32(minute)) FROM {TABLE} PREWHERE settled_at > toDateTime(0)"
_FIRST_DATA = """
    SELECT min(at) FROM
    (
        SELECT min(created_at_ms) AS at FROM mails PREWHERE created_at_ms >= 1000
        UNION ALL
        SELECT min(created_at_ms) FROM events PREWHERE created_at_ms >= 1000
    )
"""
_TOUCHED = f"""
    SELECT toUInt32(minute) FROM {TABLE}
    PREWHERE minute IN (SELECT minute FROM {TABLE} PREWHERE touched_at > toDateTime(0))
    GROUP BY minute
    HAVING max(touched_at) >= max(settled_at)
"""


def statements(
    ranges: list[Range], version: int, settled_at: str, parts: int = 1, incremental: bool = True,
) -> list[str]:
    """The statements that settle `ranges` under `version`, marked settled at the SQL time `settled_at`, each
    table's rows written in `parts` statements (by mail id). An `incremental` round (the settler's) first
    records its intent on every minute of the ranges, and marks the last minute of each even without rows, so
    the next round starts after it; the first settle of a whole history into empty tables (the migration's)
    does neither. Complete SQL, without parameters: the migration runs them as they are."""
    where = ranges_condition(ranges)
    result = [
        f"INSERT INTO {TABLE} (minute, version, settled_at, touched_at) SELECT toDateTime({start // 1000}"
        f" + number * 60), {version}, toDateTime(0), toDateTime(0) FROM numbers({(end - start) // MINUTE_MS})"
        for start, end in ranges
    ] if incremental else []
    last_minutes = "".join(
        f" UNION ALL SELECT toDateTime({(end - MINUTE_MS) // 1000})" for _, end in ranges) if incremental else ""
    for part in range(parts):
        events, mails = (
            f"({where}) AND modulo(cityHash64({column}), {parts}) = {part}" if parts > 1 else where
            for column in ("mail", "id")
        )
        slot_columns = ", ".join(provider_slots.COLUMNS[1:])
        accepted = milestones.acceptances_sql(mails, events)
        result += [
            f"INSERT INTO {provider_slots.TABLE} (minute, version, {slot_columns})"
            f" SELECT toDateTime(intDiv(slot, 1000)), {version}, {slot_columns}"
            f" FROM ({provider_slots.raw_sql(events)})",
            f"INSERT INTO {milestones.TABLE} (minute, version, {', '.join(milestones.COLUMNS)})"
            f" SELECT toDateTime(intDiv(accepted_ms, 60000) * 60), {version}, *"
            f" FROM ({milestones.raw_sql(accepted, ranges[0][0] - milestones.CLOCK_SLACK_MS)})",
            f"INSERT INTO {mail_counts.TABLE} (minute, tenant, mails, version)"
            f" SELECT *, {version} FROM ({mail_counts.raw_sql(mails)})",
        ]
    result += [
        # Waiting milestones of other minutes whose mails have events here: read raw until settled again.
        f"""INSERT INTO {TABLE} (minute, touched_at)
            SELECT DISTINCT minute, now() FROM {milestones.TABLE}
            PREWHERE NOT ({minutes_condition(ranges)}) AND {milestones.WAITING}
            WHERE mail IN (SELECT mail FROM events PREWHERE {where})""",
        # Every minute that holds rows; the next round starts after the last marked.
        f"""INSERT INTO {TABLE} (minute, version, settled_at, touched_at)
            SELECT DISTINCT minute, {version}, {settled_at}, toDateTime(0) FROM
            (
                SELECT toDateTime(intDiv(created_at_ms, 60000) * 60) AS minute FROM mails PREWHERE {where}
                UNION ALL SELECT toDateTime(intDiv(created_at_ms, 60000) * 60) FROM events PREWHERE {where}
                {last_minutes}
            )""",
    ]
    rendered = escape_params(params(slot_ms=MINUTE_MS), None)
    return [statement % rendered for statement in result]


def settle(client: Client, now_ms: int | None = None) -> list[Range]:
    """Settle every due minute (up to MARGIN_MS before `now_ms`, by default the server's clock) and every touched
    one; returns the ranges settled. Blocks; raises the driver's error when a statement fails."""
    (server_now_s,), = client.execute(_SERVER_NOW_S)
    now_ms = server_now_s * 1000 if now_ms is None else now_ms
    bound = (now_ms - MARGIN_MS) // MINUTE_MS * MINUTE_MS
    (settled, last_s), = client.execute(_THROUGH)
    if settled:
        start = last_s * 1000 + MINUTE_MS
    else:
        (first,), = client.execute(_FIRST_DATA)
        start = first // MINUTE_MS * MINUTE_MS if first else bound
    touched = [(m * 1000, m * 1000 + MINUTE_MS) for (m,) in client.execute(_TOUCHED) if m * 1000 < start]
    ranges = merged([(start, bound), *touched])
    if not ranges:
        return []
    (events,), = client.execute(f"SELECT count() FROM events PREWHERE {ranges_condition(ranges)}")
    parts = max(1, -(-events // EVENTS_PER_PART))
    for statement in statements(ranges, random.getrandbits(63), f"toDateTime({server_now_s})", parts):
        client.execute(statement)
    log.info("minutes_settled", extra={"ranges": len(ranges), "events": events, "parts": parts})
    return ranges


class Settler:
    """Settles at most once per `every_s`, from a loop that owns the client (the sink's). One sink of a group
    settles (see analytics.sink): twice the work would leave two versions of every minute."""

    def __init__(self, client: Client, every_s: float = EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._every_s = every_s
        self._clock = clock
        self._next_at = clock()

    def tick(self) -> None:
        """Settle what is due if a round is due; a failure is logged and the round tried again next time."""
        if self._clock() < self._next_at:
            return
        self._next_at = self._clock() + self._every_s
        try:
            settle(self._client)
        except RETRYABLE as err:
            log.warning("settle_failed", extra={"error": describe(err)})


