"""The analytics sink's Prometheus metrics, served on MERCURY_SINK_METRICS_PORT.

Records consumed minus rows inserted, records skipped and records ignored is what the sink holds without having written
it yet: the alert rules watch it grow while ClickHouse refuses inserts.
"""
import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("mercury.analytics.metrics")

CONSUMED = Counter("mercury_sink_records_consumed_total", "Records read from Kafka, by topic.", ["topic"])
SKIPPED = Counter("mercury_sink_records_skipped_total", "Records that could not become rows, by topic.", ["topic"])
IGNORED = Counter("mercury_sink_records_ignored_total", "Records that are not history (health read markers and "
                  "heartbeats), by topic.", ["topic"])
INSERTED = Counter("mercury_sink_rows_inserted_total", "Rows ClickHouse acknowledged, by table.", ["table"])
BATCH_SIZE = Histogram("mercury_sink_batch_records", "Records per flushed batch.",
                       buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000))
INSERT_LATENCY = Histogram("mercury_sink_insert_seconds", "Time of one successful insert, by table.", ["table"])
LAG = Gauge("mercury_sink_lag_records", "Records on the broker the sink has not read yet (after its last batch), "
            "by topic, summed over its partitions.", ["topic"])
INSERT_FAILURES = Counter("mercury_sink_insert_failures_total", "Insert attempts that failed (then retried), by table.",
                          ["table"])


def serve(port: int | None) -> None:
    """Serve /metrics on `port` (a daemon thread); None serves nothing."""
    if port is None:
        return
    start_http_server(port)
    log.info("metrics_serving", extra={"port": port})
