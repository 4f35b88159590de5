"""Provider event webhooks: verify the provider's signature, normalise, publish to mail.feedback.

A provider retries every webhook not answered 2xx, so the answers mean: 200 published (or nothing to
publish), 503 not published (retry later), 401 and 400 never going to work (the provider's retries are
refused the same way). A batch is published whole or answered 503; a retry after a partial publish
repeats records, which readers drop by provider_event_id.
"""
import asyncio
import logging
from collections.abc import Callable

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ingest import metrics, openapi
from ingest.config import IngestConfig
from ingest.responses import error, json_response
from ingest.webhook_payloads import SCHEMA, PayloadInvalid, mailgun_records, sendgrid_records
from ingest.webhook_signatures import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    MailgunVerifier,
    SendGridVerifier,
    SignatureInvalid,
    Verified,
)
from schemas import codec, topics
from schemas.events import now_ms
from schemas.producer import AsyncProducer, BrokerUnavailable

log = logging.getLogger("mercury.ingest.webhooks")
PREFIX = "/api/v1.0/webhooks"
# Providers retry webhooks for hours: no need to have them knock again within seconds.
SLOW_RETRY = {"Retry-After": "10"}

# Verifies a raw body (with its request's headers) and reads it into records, stamped with the receiving
# time in ms; raises what the answer is made of.
RecordsOf = Callable[[bytes, Request, int], tuple[Verified, list[dict]]]


class _Refused(Exception):
    def __init__(self, status: int, result: str, message: str) -> None:
        super().__init__(message)
        self.status, self.result = status, result


def _parse(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise _Refused(400, "invalid", f"body is not JSON: {err}") from None


def router(config: IngestConfig) -> APIRouter:
    """The webhook endpoints; a provider without a configured key answers 503. Raises WebhookKeyInvalid at
    start for a key that cannot be used."""
    mailgun = MailgunVerifier(config.mailgun_webhook_signing_key) if config.mailgun_webhook_signing_key else None
    sendgrid = SendGridVerifier(config.sendgrid_webhook_public_key) if config.sendgrid_webhook_public_key else None
    api = APIRouter(prefix=PREFIX, tags=["webhooks"])

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > config.max_body_bytes:
            raise _Refused(413, "invalid", f"body: larger than {config.max_body_bytes} bytes")
        body = await request.body()
        if len(body) > config.max_body_bytes:
            raise _Refused(413, "invalid", f"body: larger than {config.max_body_bytes} bytes")
        return body

    async def publish(producer: AsyncProducer, records: list[dict]) -> None:
        """All records at once (the producer batches them); raises BrokerUnavailable if any was not acknowledged."""
        sends = [producer.send(topics.FEEDBACK, r["message_id"], codec.encode(SCHEMA, r)) for r in records]
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failed:
            raise BrokerUnavailable(f"{len(failed)} of {len(records)} records not acknowledged: {failed[0]}")

    async def handle(
        provider: str, request: Request, verifier: MailgunVerifier | SendGridVerifier, records_of: RecordsOf
    ) -> Response:
        try:
            body = await read_body(request)
            verified, records = records_of(body, request, now_ms())
            await publish(request.app.state.producer, records)
        except _Refused as err:
            return refused(provider, err.status, err.result, str(err))
        except SignatureInvalid as err:
            return refused(provider, 401, "unauthorized", str(err))
        except PayloadInvalid as err:
            return refused(provider, 400, "invalid", str(err), field=err.field)
        except BrokerUnavailable as err:
            log.error("event=webhook_unpublished provider=%s error=%s", provider, err)
            metrics.WEBHOOKS.labels(provider, "unavailable").inc()
            return error(503, "the feedback stream is unavailable; retry later", SLOW_RETRY)
        verifier.mark_used(verified)
        for record in records:
            metrics.FEEDBACK_PUBLISHED.labels(provider, record["event"]).inc()
        metrics.WEBHOOKS.labels(provider, "published").inc()
        return json_response({"published": len(records)})

    def refused(provider: str, status: int, result: str, message: str, **extra: object) -> Response:
        log.warning("event=webhook_refused provider=%s status=%d reason=%r", provider, status, message)
        metrics.WEBHOOKS.labels(provider, result).inc()
        return error(status, message, SLOW_RETRY if status == 503 else None, **extra)

    def unconfigured(provider: str, full_name: str) -> Response:
        metrics.WEBHOOKS.labels(provider, "unconfigured").inc()
        return error(503, f"the {full_name} webhook is not configured", SLOW_RETRY)

    def mailgun_batch(body: bytes, _request: Request, received_at: int) -> tuple[Verified, list[dict]]:
        # Mailgun's signature sits inside the JSON body and covers only its timestamp and token.
        document = _parse(body)
        if not isinstance(document, dict):
            raise _Refused(400, "invalid", "body: must be a JSON object with signature and event-data")
        verified = mailgun.verify(document.get("signature"))
        return verified, mailgun_records(document.get("event-data"), received_at)

    def sendgrid_batch(body: bytes, request: Request, received_at: int) -> tuple[Verified, list[dict]]:
        # The signature covers the raw bytes: checked before the body is parsed at all.
        headers = request.headers
        verified = sendgrid.verify(body, headers.get(SENDGRID_SIGNATURE_HEADER), headers.get(SENDGRID_TIMESTAMP_HEADER))
        return verified, sendgrid_records(_parse(body), received_at)

    @api.post("/mailgun", **openapi.MAILGUN_WEBHOOK)
    async def mailgun_webhook(request: Request) -> Response:
        """Mailgun webhooks (JSON): one event per request."""
        if mailgun is None:
            return unconfigured("mailgun", "Mailgun")
        return await handle("mailgun", request, mailgun, mailgun_batch)

    @api.post("/sendgrid", **openapi.SENDGRID_WEBHOOK)
    async def sendgrid_webhook(request: Request) -> Response:
        """SendGrid Signed Event Webhook: a JSON array of events per request."""
        if sendgrid is None:
            return unconfigured("sendgrid", "SendGrid")
        return await handle("sendgrid", request, sendgrid, sendgrid_batch)

    return api
