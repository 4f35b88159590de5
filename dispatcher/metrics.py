"""The dispatcher's Prometheus metrics, served by each worker on MERCURY_DISPATCHER_METRICS_PORT.

Every worker counts only what it did itself; sum over workers for the fleet. The breaker gauge is the
state this worker applies, which every worker reads from the same health topic.
"""
import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from schemas.vocabulary import BREAKER_STATES

log = logging.getLogger("mercury.dispatcher.metrics")

SENDS = Counter("mercury_dispatcher_sends_total", "Send attempts by provider and outcome class.",
                ["provider", "outcome"])
SEND_LATENCY = Histogram("mercury_dispatcher_send_seconds", "Time one provider call took, whatever its outcome.",
                         ["provider"])
BREAKER_STATE = Gauge("mercury_dispatcher_breaker_state", "Provider breaker: 0 closed, 1 half_open, 2 open.",
                      ["provider"])
RETRIES = Counter("mercury_dispatcher_retries_scheduled_total", "Mails put on the retry ladder, by level.",
                  ["level"])
DEAD_LETTERS = Counter("mercury_dispatcher_dead_letters_total", "Dead letters written, by reason.", ["reason"])
DUPLICATES = Counter("mercury_dispatcher_duplicates_skipped_total",
                     "Records of a mail already sent or dead-lettered that were dropped.")

BREAKER_VALUES = {state: number for number, state in enumerate(BREAKER_STATES)}


def serve(port: int | None) -> None:
    """Serve /metrics on `port` (a daemon thread); None serves nothing, so workers sharing a host never collide."""
    if port is None:
        return
    start_http_server(port)
    log.info("metrics_serving", extra={"port": port})
