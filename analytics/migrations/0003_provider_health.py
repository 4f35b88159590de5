"""Breaker state changes over time: every open, half-open (probe claim), close and throttle window that
a worker published on mail.health, so "when was SendGrid down, and who noticed?" is one query.

The health topic is compacted (it keeps only each provider's latest state); this table keeps the
history. One row per record read, keyed by where it was read, so a re-delivered record collapses.
"""
from analytics.migrations import Server


def forwards(server: Server) -> list[str]:
    tag = server.tag("String")
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {server.database}.provider_health
        (
            provider {tag},
            state {tag},
            opened_at_ms UInt64,
            probe_owner String,
            probe_until_ms UInt64,
            throttled_until_ms UInt64,
            worker String,
            reason String,
            created_at {server.timestamp("created_at_ms")},
            created_at_ms UInt64,
            kafka_partition UInt16,
            kafka_offset UInt64
        )
        ENGINE = ReplacingMergeTree()
        PARTITION BY toYYYYMMDD(created_at)
        ORDER BY (provider, created_at_ms, kafka_partition, kafka_offset)
        {server.retention("created_at")}
        """,
    ]
