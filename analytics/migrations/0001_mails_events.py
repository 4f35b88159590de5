"""One row per accepted mail and one row per mail event, so every seed question has a table to read.

Both tables are ReplacingMergeTree keyed by the record's own id: the sink delivers at least once, and a
re-delivered row then collapses into the original when parts merge. Merges are eventual, so every read
also de-duplicates (FINAL). A row's partition comes from its own created_at, so copies of one record
always land in the same partition, where ReplacingMergeTree can collapse them.

`events` ordered by (mail, id) makes one mail's trace a primary-key range read. The values the queries
need from the free-form JSON blob (cause, status, message_id, latency_ms) are columns filled by the
sink, because ClickHouse 18.16 has no JSONExtract. `provider` and `outcome` are '' when the event has
none. created_at (DateTime) is derived from created_at_ms on insert, for partitioning and for humans.

kafka_partition and kafka_offset say where a row was read. Events are keyed by mail id, so one mail's
events share a partition and their offsets order events recorded within the same millisecond.
"""
from analytics.migrations import Server


def forwards(server: Server) -> list[str]:
    database = server.database
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {database}.mails
        (
            id String,
            sender String,
            recipients Array(String),
            subject String,
            content String,
            origin String,
            created_at DateTime DEFAULT toDateTime(intDiv(created_at_ms, 1000)),
            created_at_ms UInt64,
            kafka_partition UInt16,
            kafka_offset UInt64
        )
        ENGINE = ReplacingMergeTree()
        PARTITION BY toYYYYMM(created_at)
        ORDER BY id
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {database}.events
        (
            id String,
            mail String,
            event String,
            created_at DateTime DEFAULT toDateTime(intDiv(created_at_ms, 1000)),
            created_at_ms UInt64,
            created_by String,
            provider String,
            outcome String,
            cause String,
            status String,
            message_id String,
            latency_ms Nullable(UInt32),
            blob String,
            kafka_partition UInt16,
            kafka_offset UInt64
        )
        ENGINE = ReplacingMergeTree()
        PARTITION BY toYYYYMM(created_at)
        ORDER BY (mail, id)
        """,
    ]
