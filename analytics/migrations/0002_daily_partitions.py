"""Daily partitions, dictionary-encoded tags, millisecond times and a retention period.

Every operator question asks about a window of time, but `mails` and `events` were partitioned by month
and sorted by id: a question about the last hour read the whole month. Partitioned by day, a window
reads only the days it covers (each part's min/max created_at prunes it), and retention can drop whole
days. The sorting keys stay (one mail's trace is a key range in each day).

On servers that have them: event names, providers, outcomes and causes become LowCardinality (a few
distinct values per column: dictionary-encoded, smaller and faster to group by), created_at becomes
DateTime64(3) (the exact millisecond for humans, not only the second), and a TTL expires rows after the
retention period. ClickHouse 18.16 keeps the old types; there retention drops whole days
(analytics.retention). The tables are rebuilt: partitioning and sorting keys cannot be altered.
"""
from analytics.migrations import Server, rebuild

MAIL_COLUMNS = (
    "id", "sender", "recipients", "subject", "content", "origin", "created_at_ms", "kafka_partition", "kafka_offset",
)
EVENT_COLUMNS = (
    "id", "mail", "event", "created_at_ms", "created_by", "provider", "outcome", "cause", "status", "message_id",
    "latency_ms", "blob", "kafka_partition", "kafka_offset",
)


def forwards(server: Server) -> list[str]:
    tag = server.tag("String")
    mails = f"""
        (
            id String,
            sender String,
            recipients Array(String),
            subject String,
            content String,
            origin {tag},
            created_at {server.timestamp("created_at_ms")},
            created_at_ms UInt64,
            kafka_partition UInt16,
            kafka_offset UInt64
        )
        ENGINE = ReplacingMergeTree()
        PARTITION BY toYYYYMMDD(created_at)
        ORDER BY id
        {server.retention("created_at")}
    """
    events = f"""
        (
            id String,
            mail String,
            event {tag},
            created_at {server.timestamp("created_at_ms")},
            created_at_ms UInt64,
            created_by {tag},
            provider {tag},
            outcome {tag},
            cause {tag},
            status {tag},
            message_id String,
            latency_ms Nullable(UInt32),
            blob String,
            kafka_partition UInt16,
            kafka_offset UInt64
        )
        ENGINE = ReplacingMergeTree()
        PARTITION BY toYYYYMMDD(created_at)
        ORDER BY (mail, id)
        {server.retention("created_at")}
    """
    return [*rebuild(server, "mails", mails, MAIL_COLUMNS), *rebuild(server, "events", events, EVENT_COLUMNS)]
