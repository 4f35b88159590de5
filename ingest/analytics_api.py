"""The operators' questions over HTTP: every answer is one ClickHouse query from `analytics.questions`.

Windows start at `since` (ms since the epoch, or an RFC 3339 timestamp with a timezone) and default to the
last hour, so an answer stays cheap however long the history grows.
"""
from collections.abc import Callable

import orjson
from clickhouse_driver import Client
from fastapi import APIRouter, Query
from fastapi.responses import Response

from analytics import questions
from ingest.requests_body import timestamp_ms
from schemas.events import now_ms
from schemas.validation import InvalidMail

PREFIX = "/api/v1.0/analytics"
DEFAULT_WINDOW_S = 3600
SINCE = Query(None, description="window start: ms since the epoch or an RFC 3339 timestamp with a timezone; "
                                "default one hour ago")


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _since_ms(since: str | None) -> int:
    if since is None:
        return now_ms() - DEFAULT_WINDOW_S * 1000
    return int(since) if since.isdigit() else timestamp_ms("since", since)


def router(client: Callable[[], Client]) -> APIRouter:
    """`client` gives the calling thread its own ClickHouse client (clients are not thread-safe)."""
    api = APIRouter(prefix=PREFIX, tags=["analytics"])

    def windowed(answer: Callable[[int], object], since: str | None, key: str) -> Response:
        try:
            start = _since_ms(since)
        except InvalidMail as err:
            return _json({"error": str(err), "field": err.field}, 422)
        return _json({"since": start, key: answer(start)})

    @api.get("/")
    def index() -> Response:
        return _json({name: f"{PREFIX}/{path}" for name, path in (
            ("providers", "providers?since="), ("provider_timeline", "providers/timeline?since=&bucket_s=60"),
            ("queue_time", "queue-time?since="), ("delivery_time", "delivery-time?since="),
            ("failure_causes", "failure-causes?since="), ("unfinished", "unfinished?older_than_s=600"),
            ("trace", "mails/<mail_id>/trace"))})

    @api.get("/providers")
    def providers(since: str | None = SINCE) -> Response:
        """Per provider: attempts, sent, failed, success/failure rates, adapter-measured latency quantiles."""
        return windowed(lambda start: questions.provider_stats(client(), start), since, "providers")

    @api.get("/providers/timeline")
    def provider_timeline(since: str | None = SINCE, bucket_s: int = Query(60, ge=1, le=86_400)) -> Response:
        """The same counts and rates per provider per time bucket, for charts."""
        return windowed(lambda start: questions.provider_timeline(client(), bucket_s, start), since, "buckets")

    @api.get("/queue-time")
    def queue_time(since: str | None = SINCE) -> Response:
        """Accepted → first dispatched: count, max, avg, p50, p95, p99 (ms)."""
        return windowed(lambda start: questions.queue_time_stats(client(), start), since, "queue_time")

    @api.get("/delivery-time")
    def delivery_time(since: str | None = SINCE) -> Response:
        """Accepted → sent: count, max, avg, p50, p95, p99 (ms)."""
        return windowed(lambda start: questions.delivery_time_stats(client(), start), since, "delivery_time")

    @api.get("/failure-causes")
    def failure_causes(since: str | None = SINCE) -> Response:
        """Failed attempts per provider: network, provider outage, rate limit, permanent, provider failure,
        ambiguous."""
        return windowed(lambda start: questions.failure_causes(client(), start), since, "failure_causes")

    @api.get("/unfinished")
    def unfinished(older_than_s: float = Query(600, ge=0), limit: int = Query(100, ge=1, le=1000)) -> Response:
        """Mails accepted at least `older_than_s` ago with no terminal event: lost or stuck, with their last event."""
        mails = questions.unfinished_mails(client(), older_than_s, limit=limit)
        return _json({"older_than_s": older_than_s, "mails": mails})

    @api.get("/mails/{mail_id}/trace")
    def trace(mail_id: str) -> Response:
        """When it entered, whether it was rejected, providers tried, why attempts failed, where it is now."""
        found = questions.mail_trace(client(), mail_id)
        if found is None:
            return _json({"error": f"mail {mail_id} not found"}, 404)
        return _json(found)

    return api
