"""What `/openapi.json` says about the operators' routes: the analytics answers (ingest.operator.analytics) and
consumer lag (ingest.operator.lag). The failure causes come from the question that counts them
(analytics.questions.CAUSES)."""
from typing import Annotated, Any

from pydantic import Field
from typing_extensions import TypedDict

from analytics.questions import CAUSES, MAX_REJECTED_FIELDS
from ingest.openapi import (
    BAD_PARAMETER,
    JSON,
    NOT_FOUND,
    RETRY_AFTER,
    STORE_DOWN,
    answer_doc,
    error_doc,
)

# Answers ---------------------------------------------------------------------------------------------------


class Window(TypedDict):
    since: Annotated[int, Field(description="window start, ms since the epoch")]
    until: Annotated[int, Field(description="window end (excluded), ms since the epoch")]


class DurationStats(TypedDict):
    count: int
    max_ms: float | None
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class ProviderStats(TypedDict):
    provider: str
    attempts: int
    sent: int
    failed: int
    success_rate: float | None
    failure_rate: float | None
    latency_ms: DurationStats


class ProvidersAnswer(Window):
    providers: list[ProviderStats]


class TimelineBucket(TypedDict):
    bucket_start: int
    provider: str
    attempts: int
    sent: int
    failed: int
    success_rate: float | None
    failure_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class TimelineAnswer(Window):
    buckets: list[TimelineBucket]


class QueueTimeAnswer(Window):
    queue_time: DurationStats


class DeliveryTimeAnswer(Window):
    delivery_time: DurationStats


# Per provider: the failed attempts of each cause, `other` for those of none, and all of them.
FailureCauses = TypedDict("FailureCauses", {
    "provider": str | None, **dict.fromkeys(CAUSES, int), "other": int, "total": int})


class FailureCausesAnswer(Window):
    failure_causes: list[FailureCauses]


class Breakers(TypedDict):
    providers: Annotated[list[dict[str, Any]], Field(description="each provider's breaker as last recorded")]
    changes: Annotated[list[dict[str, Any]], Field(description="every change in the window, oldest first")]


class BreakersAnswer(Window):
    breakers: Breakers


class FeedbackAnswer(Window):
    feedback: Annotated[list[dict[str, Any]], Field(description="per provider: counts of each reported event")]


class UnfinishedMail(TypedDict):
    mail: str
    accepted_at: int
    last_event: str | None
    last_event_at: int | None
    last_provider: str | None
    attempts: int
    age_ms: int


class UnfinishedAnswer(Window):
    mails: list[UnfinishedMail]


class RejectedField(TypedDict):
    field: Annotated[str | None, Field(description=(
        "the field refused, a batch's mail positions left out (`mails[].recipients`); `authorization` for requests "
        "over the key's rate; null when the refusal named none"))]
    count: Annotated[int, Field(description="requests (or batch mails) refused for it")]
    last_reason: Annotated[str | None, Field(description="why the last of them was refused")]
    last_mail: Annotated[str, Field(description="the id the last of them was recorded under (its trace)")]
    last_at: Annotated[int, Field(description="when the last of them was recorded, ms since the epoch (a summary of "
                                              "requests over the key's rate: up to 10 s after them)")]


class Rejections(TypedDict):
    total: Annotated[int, Field(description="every request refused in the window")]
    fields: Annotated[list[RejectedField], Field(description=(
        f"per field refused, the most refused first (at most {MAX_REJECTED_FIELDS})"))]


class RejectionsAnswer(Window):
    rejections: Rejections


class Trace(TypedDict):
    mail: dict[str, Any] | None
    accepted_at: int | None
    rejected: bool
    providers_tried: list[str]
    failures: list[dict[str, Any]]
    status: Annotated[str, Field(description=(
        "the latest event, or `queued`; once a provider reported on the send, `delivered`, `bounced` or "
        "`complained` (as `GET /mails/<id>` shows it)"))]
    bounce: Annotated[str | None, Field(description="`hard` or `soft` when the status is `bounced`, else null")]
    finished_at: int | None
    events: list[dict[str, Any]]
    feedback: list[dict[str, Any]]


class LagAnswer(TypedDict):
    measured_at: Annotated[int, Field(description="ms since the epoch")]
    groups: Annotated[list[dict[str, Any]], Field(description="per consumer group: lag, per topic and partition")]
    lag: int


MODELS = (ProvidersAnswer, TimelineAnswer, QueueTimeAnswer, DeliveryTimeAnswer, FailureCausesAnswer, BreakersAnswer,
          FeedbackAnswer, UnfinishedAnswer, RejectionsAnswer, Trace, LagAnswer)


# Route entries ---------------------------------------------------------------------------------------------

WINDOW_ERROR = error_doc("a malformed `since` or `until`, or `until` not after `since`; the answer names the field")


def _window_route(model: type) -> dict[str, Any]:
    return {"responses": {200: answer_doc(model, "the answer over the window"), 422: WINDOW_ERROR, 503: STORE_DOWN}}


ANALYTICS_INDEX = {"responses": {200: {"description": "the analytics endpoints by name",
                                       "content": {JSON: {"schema": {"type": "object",
                                                                     "additionalProperties": {"type": "string"}}}}}}}
PROVIDERS = _window_route(ProvidersAnswer)
TIMELINE = _window_route(TimelineAnswer)
QUEUE_TIME = _window_route(QueueTimeAnswer)
DELIVERY_TIME = _window_route(DeliveryTimeAnswer)
FAILURE_CAUSES = _window_route(FailureCausesAnswer)
BREAKERS = _window_route(BreakersAnswer)
FEEDBACK = _window_route(FeedbackAnswer)
UNFINISHED = _window_route(UnfinishedAnswer)
REJECTIONS = _window_route(RejectionsAnswer)
TRACE = {"responses": {200: answer_doc(Trace, "the mail's whole life"), 404: NOT_FOUND, 422: BAD_PARAMETER,
                       503: STORE_DOWN}}
LAG = {"responses": {200: answer_doc(LagAnswer, "per consumer group, topic and partition: committed and end offsets"),
                     503: error_doc("the broker did not answer in time", RETRY_AFTER)}}
