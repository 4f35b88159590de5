"""What providers told us after accepting a mail (their webhooks): delivered, bounced, complained, opened,
clicked, unsubscribed, joined to the mail by the provider's message id.

Sorted by message id, so the feedback on one mail's sends is a key lookup. A provider re-sends a webhook
it thinks failed: its own event id is in the key, so the copy collapses into the first.
"""
from analytics.migrations import Server


def forwards(server: Server) -> list[str]:
    tag = server.tag("String")
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {server.database}.provider_feedback
        (
            id String,
            provider {tag},
            provider_event_id String,
            message_id String,
            event {tag},
            bounce {tag},
            recipient String,
            reason String,
            url String,
            created_at {server.timestamp("created_at_ms")},
            created_at_ms UInt64,
            received_at_ms UInt64,
            created_by {tag},
            kafka_partition UInt16,
            kafka_offset UInt64
        )
        ENGINE = ReplacingMergeTree()
        PARTITION BY toYYYYMMDD(created_at)
        ORDER BY (message_id, provider, provider_event_id)
        {server.retention("created_at")}
        """,
    ]
