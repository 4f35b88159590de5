"""The gateway's Prometheus metrics, shared by its uvicorn worker processes.

uvicorn runs several workers, each with its own counters; prometheus-client's multiprocess mode keeps
them in files under PROMETHEUS_MULTIPROC_DIR (set by `python -m ingest` before any worker starts), and
`/metrics` on any worker adds up every worker's files, so a scrape sees the whole gateway.
"""
import logging
import os
import time

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.config import MULTIPROC_ENV

access = logging.getLogger("mercury.ingest.access")
# Where ingest.keys.auth leaves the id of a request's valid key, for the access log.
KEY_ID_STATE = "key_id"

REQUESTS = Counter("mercury_ingest_requests_total", "HTTP requests answered, by route and status.",
                   ["endpoint", "status"])
LATENCY = Histogram("mercury_ingest_request_seconds", "Time to answer an HTTP request, by route.", ["endpoint"])
MAILS_ACCEPTED = Counter("mercury_ingest_mails_accepted_total",
                         "Mails answered 202 after the broker acknowledged them (idempotent replays not counted).")
MAILS_REJECTED = Counter("mercury_ingest_mails_rejected_total", "Mails refused at validation, by HTTP status.",
                         ["status"])
OVER_RATE = Counter("mercury_ingest_requests_over_rate_total",
                    "Requests (and mails of a batch) answered 429 because their key was over its rate, by tenant.",
                    ["tenant"])
UNKNOWN_KEYS_TURNED_AWAY = Counter("mercury_ingest_unknown_keys_turned_away_total",
                                   "Requests with an unknown key id answered 503 at once, because as many as "
                                   "allowed were waiting for their keys already.")
WEBHOOKS = Counter("mercury_ingest_webhooks_total",
                   "Provider webhook requests by provider and result (published, unauthorized, invalid, "
                   "unconfigured, unavailable).", ["provider", "result"])
FEEDBACK_PUBLISHED = Counter("mercury_ingest_feedback_events_total",
                             "Provider events published to mail.feedback, by provider and event.",
                             ["provider", "event"])
# What `/openapi.json` says about `/metrics`.
METRICS = {"response_class": PlainTextResponse,
           "responses": {200: {"description": "Prometheus text format, every worker's metrics added up",
                               "content": {"text/plain": {"schema": {"type": "string"}}}}}}


def install(app: FastAPI, access_log: bool) -> None:
    """`/metrics` for Prometheus, and the middleware counting (and with `access_log`, logging) every answer."""
    app.add_middleware(RequestMetrics, access_log=access_log)

    @app.get("/metrics", **METRICS)
    def prometheus_metrics() -> Response:
        body, content_type = render()
        return Response(body, media_type=content_type)


def render() -> tuple[bytes, str]:
    """Every worker's metrics when the gateway runs in multiprocess mode, else this process's own."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class RequestMetrics:
    """ASGI middleware counting each answer under its route template, so mail ids never become labels, and
    logging it: the route template, not the path, so a log line never carries a mail id or a query's values;
    the key's id (`ingest.keys.auth` sets it once the key is valid), never its secret."""

    def __init__(self, app: ASGIApp, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            elapsed_s = time.perf_counter() - started
            REQUESTS.labels(endpoint, str(status)).inc()
            LATENCY.labels(endpoint).observe(elapsed_s)
            if self.access_log:
                access.info("request", extra={
                    "method": scope["method"], "route": endpoint, "status": status,
                    "ms": round(elapsed_s * 1000, 1), "key": scope.get("state", {}).get(KEY_ID_STATE, "-")})
