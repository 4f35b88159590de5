"""The sink's part in keeping the rollups true: a row written into a minute that may be settled touches it.

Minutes are settled MARGIN_MS after they end (analytics.rollups.settle), by the server's clock; a row older
than half of that may land in a settled minute, so the sink records its minute in `settled_minutes` with the
batch, after the rows (it reads raw until settled again). Within the margin nothing is recorded, which is every
row of a sink that keeps up: the check costs one pass over the batch's timestamps. The half margin left over
covers the difference between the sink's clock and the server's.
"""
from operator import itemgetter

from analytics.rollups.spans import MARGIN_MS, MINUTE_MS, TABLE
from analytics.rows import EVENT_COLUMNS, MAIL_COLUMNS, Row

COLUMNS = ("minute",)
TOUCH_AFTER_MS = MARGIN_MS // 2
_TIMES = {"mails": itemgetter(MAIL_COLUMNS.index("created_at_ms")),
          "events": itemgetter(EVENT_COLUMNS.index("created_at_ms"))}


def with_touches(rows_by_table: dict[str, list[Row]], now_ms: int) -> dict[str, list[Row]]:
    """The batch's rows, followed by one `settled_minutes` row per minute its old rows were written into."""
    before = now_ms - TOUCH_AFTER_MS
    minutes: set[int] = set()
    for table, time_of in _TIMES.items():
        rows = rows_by_table.get(table)
        if rows and min(map(time_of, rows)) < before:
            minutes.update(ms // MINUTE_MS * 60 for ms in map(time_of, rows) if ms < before)
    if not minutes:
        return rows_by_table
    return {**rows_by_table, TABLE: [(minute,) for minute in sorted(minutes)]}
