"""Rollups the operators' questions read instead of every raw event: provider activity per minute, each mail's
milestones, stored mails per minute, and which minutes they answer for (analytics.rollups).

Read with FINAL, a month of raw events took seconds per question, and `GET /mails/` counted every row with
FINAL. These tables are plain MergeTree: the settler writes each minute once under a version and reads pick the
latest version, so nothing is merged at read time. They are partitioned by day like the raw tables, so
retention drops them alike (and carries their TTL where the server has TTL).

Upgrading a deployment settles its whole history here, from the raw tables (INSERT ... SELECT, split by mail
id to bound the server's memory), up to two minutes ago; the sink settles from there on. Repeating the
migration starts the tables over, so run it with the sink stopped, as every migration.
"""
import random
import time

from analytics.migrations import Server
from analytics.rollups import settle
from analytics.rollups.spans import MARGIN_MS, MINUTE_MS

# Enough parts that a history of ten million mails settles within the local server's memory limit.
BACKFILL_PARTS = 8


def forwards(server: Server) -> list[str]:
    database, tag = server.database, server.tag("String")

    def table(name: str, columns: str, order_by: str) -> str:
        return f"""
            CREATE TABLE IF NOT EXISTS {database}.{name} ({columns})
            ENGINE = MergeTree() PARTITION BY toYYYYMMDD(minute) ORDER BY ({order_by})
            {server.retention("minute")}
        """

    creates = [
        table("provider_minutes", f"""
            minute DateTime, version UInt64, tenant {tag}, provider {tag}, orphan String,
            attempts UInt64, sent UInt64, failed UInt64, network UInt64, provider_outage UInt64, rate_limit UInt64,
            permanent UInt64, provider_failure UInt64, ambiguous UInt64,
            latencies Array(UInt32), latency_counts Array(UInt64)
        """, "tenant, minute, provider, orphan"),
        table("mail_milestones", f"""
            minute DateTime, version UInt64, mail String, tenant {tag}, accepted_ms UInt64, dispatched_ms UInt64,
            sent_ms UInt64, finished UInt8, last_event String, last_event_ms UInt64, last_provider String,
            attempts UInt32
        """, "tenant, minute, mail"),
        table("mail_counts", f"minute DateTime, version UInt64, tenant {tag}, mails UInt64", "tenant, minute"),
        table("settled_minutes", """
            minute DateTime, version UInt64 DEFAULT 0, settled_at DateTime DEFAULT toDateTime(0),
            touched_at DateTime DEFAULT now()
        """, "minute"),
    ]
    tables = ("provider_minutes", "mail_milestones", "mail_counts", "settled_minutes")
    history = [(0, (time.time_ns() // 1_000_000 - MARGIN_MS) // MINUTE_MS * MINUTE_MS)]
    return [
        *creates,
        *(f"TRUNCATE TABLE {database}.{name}" for name in tables),
        *settle.statements(history, random.getrandbits(63), "now()", BACKFILL_PARTS, incremental=False),
    ]
