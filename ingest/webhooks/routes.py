"""Provider event webhooks: verify the provider's signature, normalise, publish to mail.feedback.

A provider retries every webhook not answered 2xx, so the answers mean: 200 published (or nothing to
publish), 503 not published (retry later), 401, 400 and 413 never going to work (the provider's retries are
refused the same way). A batch is published whole or answered 503; a retry after a partial publish
repeats records, which readers drop by provider_event_id. The body is read up to `max_body_bytes` whatever
its framing (chunked, or longer than declared).

A request's replay key, reserved when its signature is checked, is spent by any answer but a 503: a 400 is
final for that body, and the same Mailgun token must not then carry another event. A 503, or a request that
ends without an answer (cancelled, or failed), releases it for the provider's retry.
"""
import logging
from collections.abc import Callable, Mapping

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from ingest import metrics
from ingest.api_root import API
from ingest.bodies import read_limited
from ingest.config import IngestConfig
from ingest.errors import BodyTooLarge, GatewayError
from ingest.responses import json_response
from ingest.webhooks import openapi as docs
from ingest.webhooks.common import SCHEMA, RecordsOf, Verified, WebhookRefused
from ingest.webhooks.mailgun import MailgunVerifier
from ingest.webhooks.sendgrid import SendGridVerifier
from schemas import codec, topics
from schemas.events import now_ms
from schemas.kafka.producer import AsyncProducer, BrokerUnavailable, Output

log = logging.getLogger("mercury.ingest.webhooks.routes")
PREFIX = f"{API}/webhooks"
# Providers retry webhooks for hours: no need to have them knock again within seconds.
SLOW_RETRY = {"Retry-After": "10"}

# A provider's `check`: verifies a raw body with its request's headers, reserving the request's replay key, and
# nothing else may raise once it is reserved: anything left to refuse is left to its RecordsOf.
Check = Callable[[bytes, Mapping[str, str]], tuple[Verified, RecordsOf]]


async def _publish(producer: AsyncProducer, records: list[dict]) -> None:
    """All records at once (the producer batches them); raises BrokerUnavailable if any was not acknowledged."""
    outcomes = await producer.send_all([Output(topics.FEEDBACK, r["message_id"], codec.encode(SCHEMA, r))
                                        for r in records])
    failed = [outcome for outcome in outcomes if outcome is not None]
    if failed:
        raise BrokerUnavailable(f"{len(failed)} of {len(records)} records not acknowledged: {failed[0]}")


def _refused(provider: str, err: WebhookRefused) -> Response:
    log.warning("webhook_refused", extra={"provider": provider, "status": err.status, "reason": str(err)})
    metrics.WEBHOOKS.labels(provider, err.result).inc()
    return err.response()


def _unconfigured(provider: str, full_name: str) -> Response:
    metrics.WEBHOOKS.labels(provider, "unconfigured").inc()
    return GatewayError(503, f"the {full_name} webhook is not configured", headers=SLOW_RETRY).response()


async def _answer(provider: str, request: Request, records_of: RecordsOf) -> Response:
    """The answer to a verified request: its records published, or why not."""
    try:
        records = records_of(now_ms())
        await _publish(request.app.state.producer, records)
    except WebhookRefused as err:
        return _refused(provider, err)
    except BrokerUnavailable as err:
        log.error("webhook_unpublished", extra={"provider": provider, "error": str(err)})
        metrics.WEBHOOKS.labels(provider, "unavailable").inc()
        return GatewayError(503, "the feedback stream is unavailable; retry later", headers=SLOW_RETRY).response()
    for record in records:
        metrics.FEEDBACK_PUBLISHED.labels(provider, record["event"]).inc()
    metrics.WEBHOOKS.labels(provider, "published").inc()
    return json_response({"published": len(records)})


def install(app: FastAPI, config: IngestConfig) -> None:
    """The webhook endpoints; a provider without a configured key answers 503. Raises WebhookKeyInvalid at
    start for a key that cannot be used."""
    mailgun = MailgunVerifier(config.mailgun_webhook_signing_key) if config.mailgun_webhook_signing_key else None
    sendgrid = SendGridVerifier(config.sendgrid_webhook_public_key) if config.sendgrid_webhook_public_key else None
    api = APIRouter(prefix=PREFIX, tags=["webhooks"])

    async def handle(provider: str, request: Request, verifier: MailgunVerifier | SendGridVerifier) -> Response:
        check: Check = verifier.check
        try:
            body = await read_limited(request, config.max_body_bytes)
            verified, records_of = check(body, request.headers)
        except BodyTooLarge as err:
            # Answered without the `field` the gateway's other 413s carry, as it always was.
            return _refused(provider, WebhookRefused(413, str(err)))
        except WebhookRefused as err:
            return _refused(provider, err)
        answer = None
        try:
            answer = await _answer(provider, request, records_of)
            return answer
        finally:
            if answer is None or answer.status_code == 503:
                verifier.release(verified)
            else:
                verifier.mark_used(verified)

    @api.post("/mailgun", **docs.MAILGUN_WEBHOOK)
    async def mailgun_webhook(request: Request) -> Response:
        """Mailgun webhooks (JSON): one event per request."""
        if mailgun is None:
            return _unconfigured("mailgun", "Mailgun")
        return await handle("mailgun", request, mailgun)

    @api.post("/sendgrid", **docs.SENDGRID_WEBHOOK)
    async def sendgrid_webhook(request: Request) -> Response:
        """SendGrid Signed Event Webhook: a JSON array of events per request."""
        if sendgrid is None:
            return _unconfigured("sendgrid", "SendGrid")
        return await handle("sendgrid", request, sendgrid)

    app.include_router(api)
