"""How long analytics rows are kept: MERCURY_RETENTION_DAYS (default 90; 0 keeps everything).

Every table is partitioned by day, so on any server a day older than the retention period is dropped
whole (cheap: no rewrite). Servers with TTL (19.6 and later) also carry the period in each table's TTL,
which expires rows within a day as parts merge; `apply_ttl` keeps that clause equal to the setting.
"""
import datetime
import logging
import os
import re
import time
from collections.abc import Callable, Mapping

from clickhouse_driver import Client

from analytics.migrations import Server
from analytics.writer import RETRYABLE, describe

log = logging.getLogger("mercury.analytics.retention")

DEFAULT_DAYS = 90
CHECK_EVERY_S = 3600.0
# Every table, with the column its days and TTL are counted from.
TABLES = {
    "mails": "created_at", "events": "created_at", "provider_health": "created_at", "provider_feedback": "created_at",
    "provider_minutes": "minute", "mail_milestones": "minute", "mail_counts": "minute", "settled_minutes": "minute",
}
_DAY_PARTITION = re.compile(r"^\d{8}$")
_TTL_DAYS = re.compile(r"\bTTL\b.*?toIntervalDay\((\d+)\)")


def retention_days(env: Mapping[str, str] = os.environ) -> int:
    """The configured period; raises ValueError naming the variable when it is not a whole number ≥ 0."""
    raw = env.get("MERCURY_RETENTION_DAYS", str(DEFAULT_DAYS))
    if not raw.isdigit():
        raise ValueError(f"MERCURY_RETENTION_DAYS must be a whole number of days (0 keeps everything), got {raw!r}")
    return int(raw)


def apply_ttl(client: Client, server: Server) -> list[str]:
    """Make every table's TTL say the configured period (on servers with TTL); returns the tables changed."""
    if not server.ttl:
        return []
    changed = []
    rows = client.execute(
        "SELECT name, engine_full FROM system.tables WHERE database = %(database)s AND name IN %(tables)s",
        {"database": server.database, "tables": tuple(TABLES)},
    )
    for table, engine in rows:
        found = _TTL_DAYS.search(engine)
        current = int(found.group(1)) if found else 0
        if current == server.retention_days:
            continue
        if server.retention_days:
            client.execute(f"ALTER TABLE {server.database}.{table} MODIFY {server.retention(TABLES[table])}")
        else:
            client.execute(f"ALTER TABLE {server.database}.{table} REMOVE TTL")
        log.info("retention_ttl_changed",
                 extra={"table": table, "from_days": current, "to_days": server.retention_days})
        changed.append(table)
    return changed


def drop_expired_days(client: Client, database: str, days: int, now: datetime.datetime | None = None) -> list[str]:
    """Drop every day partition that lies wholly before the retention period; returns `table/day` dropped."""
    if days <= 0:
        return []
    now = now or datetime.datetime.now(datetime.UTC)
    first_kept = int((now - datetime.timedelta(days=days)).strftime("%Y%m%d"))
    rows = client.execute(
        "SELECT DISTINCT table, partition FROM system.parts"
        " WHERE database = %(database)s AND table IN %(tables)s AND active",
        {"database": database, "tables": tuple(TABLES)},
    )
    dropped = []
    for table, partition in sorted(rows):
        if _DAY_PARTITION.match(partition) and int(partition) < first_kept:
            client.execute(f"ALTER TABLE {database}.{table} DROP PARTITION {int(partition)}")
            dropped.append(f"{table}/{partition}")
    if dropped:
        log.info("retention_days_dropped", extra={"database": database, "days": days, "dropped": ",".join(dropped)})
    return dropped


class DailyRetention:
    """Drops expired days at most once per `every_s`, from a loop that owns the client (the sink's)."""

    def __init__(self, client: Client, database: str, days: int, every_s: float = CHECK_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._database = database
        self._days = days
        self._every_s = every_s
        self._clock = clock
        self._next_at = clock()

    def tick(self) -> None:
        """Drop what expired if a check is due; a failure is logged and the check is tried again next time."""
        if self._days <= 0 or self._clock() < self._next_at:
            return
        self._next_at = self._clock() + self._every_s
        try:
            drop_expired_days(self._client, self._database, self._days)
        except RETRYABLE as err:
            log.warning("retention_failed", extra={"database": self._database, "error": describe(err)})
