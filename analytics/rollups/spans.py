"""Which minutes of a window the rollups answer for, and which ranges are read from the raw tables instead.

`settled_minutes` holds three kinds of rows per minute: the settler's intent (the version it is about to write
rows under, before it writes any), its mark (that version again, with `settled_at`, the server's clock before
it read the raw tables), and the sink's touches (`touched_at`: a row was written into the minute after it may
have been settled). A minute is clean when it was never touched, or marked after its last touch (the clock has
whole seconds: a touch in the mark's own second leaves the minute unclean, to be settled again). A clean
minute's rollup rows are those of its latest mark; other versions (of earlier rounds, or of a round interrupted
before its marks) stay until retention drops their day, so where a minute names more than one version, reads
pick the rows of the latest. Minutes that held no data when settled carry no mark (but an intent): they read
from the rollups, which hold nothing for them, as the raw tables do.
"""
from dataclasses import dataclass

from clickhouse_driver import Client

from analytics.rows import LAST_MS

TABLE = "settled_minutes"
MINUTE_MS = 60_000
# How long after its end a minute is settled: rows of a minute normally reach ClickHouse within it.
MARGIN_MS = 120_000

Range = tuple[int, int]  # [start, end) in ms since the epoch
# Runs of whole minutes up to this long are listed minute by minute in raw conditions.
_MINUTE_RUN_MS = 3 * 60 * MINUTE_MS

_STATE = f"""
    SELECT countIf(settled), minIf(minute_s, settled), maxIf(minute_s, settled),
           groupArrayIf(minute_s, NOT clean), groupArrayIf(minute_s, clean AND several_versions),
           groupArrayIf(latest, clean AND several_versions)
    FROM
    (
        SELECT toUInt32(minute) AS minute_s, argMax(version, settled_at) AS latest,
               max(settled_at) > toDateTime(0) AS settled,
               max(touched_at) = toDateTime(0) OR max(settled_at) > max(touched_at) AS clean,
               minIf(version, version != 0) != maxIf(version, version != 0) AS several_versions
        FROM {TABLE}
        PREWHERE minute >= toDateTime(%(since_s)s)
        GROUP BY minute
    )
"""


@dataclass(frozen=True)
class Spans:
    """What is settled from `since_ms` on. Minutes are named by their first millisecond."""

    since_ms: int
    first_ms: int = LAST_MS  # the first settled minute
    through_ms: int = 0  # the end of the last settled minute
    unclean: frozenset[int] = frozenset()
    resettled: tuple[tuple[int, int], ...] = ()  # (minute, latest version) of clean minutes settled more than once

    @classmethod
    def load(cls, client: Client, since_ms: int) -> "Spans":
        """Read the state from the minute holding `since_ms` on (one small query; blocks)."""
        (settled, first_s, last_s, unclean, resettled, versions), = client.execute(
            _STATE, {"since_s": since_ms // MINUTE_MS * MINUTE_MS // 1000})
        if not settled:
            return cls(since_ms)
        return cls(
            since_ms, first_s * 1000, last_s * 1000 + MINUTE_MS, frozenset(m * 1000 for m in unclean),
            tuple((m * 1000, v) for m, v in zip(resettled, versions)),
        )

    def core(self, until_ms: int, whole: bool) -> Range:
        """The settled minutes inside [since, until): with `whole`, only minutes wholly inside (for per-minute
        sums); otherwise every minute the window touches (for rows that carry their exact time)."""
        if whole:
            start, end = _ceil(self.since_ms), until_ms // MINUTE_MS * MINUTE_MS
        else:
            start, end = self.since_ms // MINUTE_MS * MINUTE_MS, _ceil(until_ms)
        start, end = max(start, self.first_ms), min(end, self.through_ms)
        return (start, end) if start < end else (start, start)

    def table_condition(self, until_ms: int, whole: bool) -> str:
        """SQL over a rollup table's `minute` and `version`: the rows that answer for the core."""
        start, end = self.core(until_ms, whole)
        if start == end:
            return "0"
        parts = [f"minute >= toDateTime({start // 1000})", f"minute < toDateTime({end // 1000})"]
        unclean = sorted(m // 1000 for m in self.unclean if start <= m < end)
        if unclean:
            parts.append(f"toUInt32(minute) NOT IN ({', '.join(map(str, unclean))})")
        resettled = sorted((m // 1000, v) for m, v in self.resettled if start <= m < end)
        if resettled:
            minutes = ", ".join(str(m) for m, _ in resettled)
            # The (0, 0) pair keeps a single pair from reading as a plain tuple of two values.
            pairs = ", ".join(f"({m}, {v})" for m, v in resettled + [(0, 0)])
            parts.append(f"(toUInt32(minute) NOT IN ({minutes}) OR (toUInt32(minute), version) IN ({pairs}))")
        return " AND ".join(parts)

    def raw_ranges(self, until_ms: int, whole: bool) -> list[Range]:
        """The parts of [since, until) the core does not answer for."""
        start, end = self.core(until_ms, whole)
        holes = [(self.since_ms, start), *((m, m + MINUTE_MS) for m in sorted(self.unclean) if start <= m < end),
                 (end, until_ms)]
        return merged([(max(a, self.since_ms), min(b, until_ms)) for a, b in holes])

    def unsettled_ranges(self) -> list[Range]:
        """Everything from `since` on that no clean minute covers: where rows newer than the rollups may be."""
        holes = [(self.since_ms, self.first_ms), *((m, m + MINUTE_MS) for m in sorted(self.unclean)),
                 (self.through_ms, LAST_MS)]
        return merged([(max(a, self.since_ms), b) for a, b in holes])


def ranges_condition(ranges: list[Range]) -> str:
    """SQL over a raw table's created_at (the day partitions to read) and created_at_ms: rows in any range.
    Runs of whole minutes (the minutes touched after settling) make one term, whatever their number: many
    terms each bounding created_at cost 18.16 more to plan than the rows cost to read."""
    minutes = [m for start, end in ranges if _whole(start, end) for m in range(start, end, MINUTE_MS)]
    terms = [_range_term(start, end) for start, end in ranges if not _whole(start, end)]
    if minutes:
        listed = ", ".join(str(m // MINUTE_MS) for m in minutes)
        span = _range_term(minutes[0], minutes[-1] + MINUTE_MS)
        terms.append(f"({span} AND intDiv(created_at_ms, {MINUTE_MS}) IN ({listed}))")
    return " OR ".join(terms) or "0"


def _whole(start: int, end: int) -> bool:
    return start % MINUTE_MS == 0 and end % MINUTE_MS == 0 and end - start <= _MINUTE_RUN_MS


def _range_term(start: int, end: int) -> str:
    end_s = min(end // 1000 + 1, LAST_MS // 1000)  # created_at may hold milliseconds
    return (f"(created_at >= toDateTime({start // 1000}) AND created_at < toDateTime({end_s})"
            f" AND created_at_ms >= {start} AND created_at_ms < {end})")


def _ceil(ms: int) -> int:
    return -(-ms // MINUTE_MS) * MINUTE_MS


def minutes_condition(ranges: list[Range]) -> str:
    """SQL over a rollup table's `minute`: minutes in any range."""
    if not ranges:
        return "0"
    return " OR ".join(
        f"(minute >= toDateTime({start // 1000}) AND minute < toDateTime({end // 1000}))" for start, end in ranges)


def merged(ranges: list[Range]) -> list[Range]:
    """The non-empty ranges, sorted, overlapping and adjacent ones joined."""
    result: list[Range] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if result and start <= result[-1][1]:
            result[-1] = (result[-1][0], max(end, result[-1][1]))
        else:
            result.append((start, end))
    return result
