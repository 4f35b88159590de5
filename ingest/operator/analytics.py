"""The operators' questions over HTTP: every answer is one ClickHouse query from `analytics.questions`.

Windows run from `since` to `until` (each ms since the epoch, or an RFC 3339 timestamp with a timezone);
`since` defaults to an hour ago and `until` to now, so an answer stays cheap however long the history grows.
"""
import re
from collections.abc import Callable

from clickhouse_driver import Client
from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import Response

from analytics import questions
from ingest.api_root import API
from ingest.errors import GatewayError
from ingest.keys.api_key import ApiKey
from ingest.keys.auth import OPERATOR, READ
from ingest.mails.request_body import timestamp_ms
from ingest.operator import openapi as docs
from ingest.responses import json_response
from schemas.events import now_ms
from schemas.validation import InvalidMail

PREFIX = f"{API}/analytics"
DEFAULT_WINDOW_S = 3600
UNFINISHED_WINDOW_S = 86_400
# 15 digits of ms reach past the year 33000; more would overflow ClickHouse's and the JSON answer's integers.
_MS = re.compile(r"[0-9]+")
MAX_MS_DIGITS = 15
# About 136 years, the span of ClickHouse's DateTime: any older mail cannot exist.
MAX_AGE_S = 2**32
# What a moment may be, for the schema: digits of ms since the epoch, or an RFC 3339 timestamp with a timezone.
MOMENT = {"anyOf": [{"type": "string", "pattern": f"^[0-9]{{1,{MAX_MS_DIGITS}}}$"},
                    {"type": "string", "format": "date-time"}]}
SINCE = Query(None, description="window start: ms since the epoch or an RFC 3339 timestamp with a timezone; "
                                "default one hour ago", json_schema_extra=MOMENT)
UNTIL = Query(None, description="window end (excluded), like `since`; default now", json_schema_extra=MOMENT)


def _moment_ms(field: str, value: str | None, default_ms: int) -> int:
    """ASCII digits are ms (str.isdigit would let '²' through to int()); anything else is an RFC 3339 timestamp.
    Raises a 422 naming `field`."""
    if value is None:
        return default_ms
    if not _MS.fullmatch(value):
        try:
            return timestamp_ms(field, value)
        except InvalidMail as err:
            raise GatewayError(422, str(err), field) from err
    if len(value) > MAX_MS_DIGITS:
        raise GatewayError(422, f"{field}: out of range: at most {MAX_MS_DIGITS} digits of milliseconds", field)
    return int(value)


def install(app: FastAPI, client: Callable[[], Client]) -> None:
    """`client` gives the calling thread its own ClickHouse client (clients are not thread-safe)."""
    api = APIRouter(prefix=PREFIX, tags=["analytics"])

    def windowed(answer: Callable[[int, int], object], since: str | None, until: str | None, key: str,
                 window_s: int = DEFAULT_WINDOW_S) -> Response:
        now = now_ms()
        start = _moment_ms("since", since, now - window_s * 1000)
        end = _moment_ms("until", until, now)
        if end <= start:
            raise GatewayError(422, f"until ({end}) must be after since ({start})", "until")
        return json_response({"since": start, "until": end, key: answer(start, end)})

    @api.get("/", dependencies=[READ], **docs.ANALYTICS_INDEX)
    def index() -> Response:
        window = "since=&until="
        return json_response({name: f"{PREFIX}/{path}" for name, path in (
            ("providers", f"providers?{window}"), ("provider_timeline", f"providers/timeline?{window}&bucket_s=60"),
            ("queue_time", f"queue-time?{window}"), ("delivery_time", f"delivery-time?{window}"),
            ("failure_causes", f"failure-causes?{window}"), ("breakers", f"breakers?{window}"),
            ("feedback", f"feedback?{window}"), ("unfinished", "unfinished?older_than_s=600&since="),
            ("rejections", f"rejections?{window}"), ("lag", "lag"), ("trace", "mails/<mail_id>/trace"))})

    @api.get("/providers", **docs.PROVIDERS)
    def providers(since: str | None = SINCE, until: str | None = UNTIL, key: ApiKey = READ) -> Response:
        """Per provider: attempts, sent, failed, success/failure rates, adapter-measured latency quantiles."""
        return windowed(lambda start, end: questions.provider_stats(client(), start, end, tenant=key.tenant),
                        since, until, "providers")

    @api.get("/providers/timeline", **docs.TIMELINE)
    def provider_timeline(since: str | None = SINCE, until: str | None = UNTIL,
                          bucket_s: int = Query(60, ge=1, le=86_400), key: ApiKey = READ) -> Response:
        """The same counts and rates per provider per time bucket, with p50/p95 send latency, for charts."""
        return windowed(lambda start, end: questions.provider_timeline(client(), bucket_s, start, end,
                                                                       tenant=key.tenant),
                        since, until, "buckets")

    @api.get("/queue-time", **docs.QUEUE_TIME)
    def queue_time(since: str | None = SINCE, until: str | None = UNTIL, key: ApiKey = READ) -> Response:
        """Accepted → first dispatched: count, max, avg, p50, p95, p99 (ms)."""
        return windowed(lambda start, end: questions.queue_time_stats(client(), start, end, tenant=key.tenant),
                        since, until, "queue_time")

    @api.get("/delivery-time", **docs.DELIVERY_TIME)
    def delivery_time(since: str | None = SINCE, until: str | None = UNTIL, key: ApiKey = READ) -> Response:
        """Accepted → sent: count, max, avg, p50, p95, p99 (ms)."""
        return windowed(lambda start, end: questions.delivery_time_stats(client(), start, end, tenant=key.tenant),
                        since, until, "delivery_time")

    @api.get("/failure-causes", **docs.FAILURE_CAUSES)
    def failure_causes(since: str | None = SINCE, until: str | None = UNTIL, key: ApiKey = READ) -> Response:
        """Failed attempts per provider: network, provider outage, rate limit, permanent, provider failure,
        ambiguous."""
        return windowed(lambda start, end: questions.failure_causes(client(), start, end, tenant=key.tenant),
                        since, until, "failure_causes")

    @api.get("/breakers", dependencies=[OPERATOR], **docs.BREAKERS)
    def breakers(since: str | None = SINCE, until: str | None = UNTIL) -> Response:
        """Each provider's breaker as last recorded, and every change (open, probe, close, throttle) in the window."""
        return windowed(lambda start, end: questions.breakers(client(), start, end), since, until, "breakers")

    @api.get("/feedback", dependencies=[OPERATOR], **docs.FEEDBACK)
    def feedback(since: str | None = SINCE, until: str | None = UNTIL) -> Response:
        """What providers reported through their webhooks, per provider: delivered, bounces, complaints, opens,
        clicks, unsubscribes."""
        return windowed(lambda start, end: questions.provider_feedback(client(), start, end), since, until,
                        "feedback")

    @api.get("/rejections", **docs.REJECTIONS)
    def rejections(since: str | None = SINCE, until: str | None = UNTIL, key: ApiKey = READ) -> Response:
        """Requests refused (at validation, over the key's rate, or by the dispatcher): how many, and per field
        refused the count, the last reason, the id the last was recorded under and when."""
        return windowed(lambda start, end: questions.rejections(client(), start, end, tenant=key.tenant),
                        since, until, "rejections")

    @api.get("/unfinished", **docs.UNFINISHED)
    def unfinished(older_than_s: float = Query(600, ge=0, le=MAX_AGE_S, allow_inf_nan=False),
                   limit: int = Query(100, ge=1, le=1000),
                   since: str | None = Query(None, description="oldest acceptance looked at; default a day ago",
                                             json_schema_extra=MOMENT),
                   key: ApiKey = READ) -> Response:
        """Mails accepted at least `older_than_s` ago with no terminal event: lost or stuck, with their last event."""
        def answer(start: int, end: int) -> list[dict]:
            return questions.unfinished_mails(client(), older_than_s, now_ms=end, limit=limit, since_ms=start,
                                              tenant=key.tenant)

        return windowed(answer, since, None, "mails", UNFINISHED_WINDOW_S)

    @api.get("/mails/{mail_id}/trace", **docs.TRACE)
    def trace(mail_id: str, key: ApiKey = READ) -> Response:
        """When it entered, whether it was rejected, providers tried, why attempts failed, where it is now, and
        what the provider reported afterwards."""
        found = questions.mail_trace(client(), mail_id, tenant=key.tenant)
        if found is None:
            raise GatewayError(404, f"mail {mail_id} not found")
        return json_response(found)

    app.include_router(api)
