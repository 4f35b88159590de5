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
from collections.abc import Callable
from functools import partial

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ingest import metrics, openapi
from ingest.api_root import API
from ingest.bodies import BodyTooLarge, read_limited
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
from schemas.kafka.producer import AsyncProducer, BrokerUnavailable, Output

log = logging.getLogger("mercury.ingest.webhooks")
PREFIX = f"{API}/webhooks"
# Providers retry webhooks for hours: no need to have them knock again within seconds.
SLOW_RETRY = {"Retry-After": "10"}

# Reads a checked request into records stamped with the receiving time in ms; raises PayloadInvalid or _Refused.
RecordsOf = Callable[[int], list[dict]]
# Verifies a raw body with its request's headers, reserving the request's replay key, and nothing else may
# raise once it is reserved: anything left to refuse is left to its RecordsOf.
Check = Callable[[bytes, Request], tuple[Verified, RecordsOf]]


class _Refused(Exception):
    def __init__(self, status: int, result: str, message: str) -> None:
        super().__init__(message)
        self.status, self.result = status, result


def _parse(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise _Refused(400, "invalid", f"body is not JSON: {err}") from None


def _sendgrid_records(body: bytes, received_at: int) -> list[dict]:
    return sendgrid_records(_parse(body), received_at)


async def _publish(producer: AsyncProducer, records: list[dict]) -> None:
    """All records at once (the producer batches them); raises BrokerUnavailable if any was not acknowledged."""
    outcomes = await producer.send_all([Output(topics.FEEDBACK, r["message_id"], codec.encode(SCHEMA, r))
                                        for r in records])
    failed = [outcome for outcome in outcomes if outcome is not None]
    if failed:
        raise BrokerUnavailable(f"{len(failed)} of {len(records)} records not acknowledged: {failed[0]}")


def _refused(provider: str, status: int, result: str, message: str, **extra: object) -> Response:
    log.warning("event=webhook_refused provider=%s status=%d reason=%r", provider, status, message)
    metrics.WEBHOOKS.labels(provider, result).inc()
    return error(status, message, SLOW_RETRY if status == 503 else None, **extra)


def _unconfigured(provider: str, full_name: str) -> Response:
    metrics.WEBHOOKS.labels(provider, "unconfigured").inc()
    return error(503, f"the {full_name} webhook is not configured", SLOW_RETRY)


async def _answer(provider: str, request: Request, records_of: RecordsOf) -> Response:
    """The answer to a verified request: its records published, or why not."""
    try:
        records = records_of(now_ms())
        await _publish(request.app.state.producer, records)
    except _Refused as err:
        return _refused(provider, err.status, err.result, str(err))
    except PayloadInvalid as err:
        return _refused(provider, 400, "invalid", str(err), field=err.field)
    except BrokerUnavailable as err:
        log.error("event=webhook_unpublished provider=%s error=%s", provider, err)
        metrics.WEBHOOKS.labels(provider, "unavailable").inc()
        return error(503, "the feedback stream is unavailable; retry later", SLOW_RETRY)
    for record in records:
        metrics.FEEDBACK_PUBLISHED.labels(provider, record["event"]).inc()
    metrics.WEBHOOKS.labels(provider, "published").inc()
    return json_response({"published": len(records)})


def router(config: IngestConfig) -> APIRouter:
    """The webhook endpoints; a provider without a configured key answers 503. Raises WebhookKeyInvalid at
    start for a key that cannot be used."""
    mailgun = MailgunVerifier(config.mailgun_webhook_signing_key) if config.mailgun_webhook_signing_key else None
    sendgrid = SendGridVerifier(config.sendgrid_webhook_public_key) if config.sendgrid_webhook_public_key else None
    api = APIRouter(prefix=PREFIX, tags=["webhooks"])

    async def handle(provider: str, request: Request, verifier: MailgunVerifier | SendGridVerifier,
                     check: Check) -> Response:
        try:
            body = await read_limited(request, config.max_body_bytes)
            verified, records_of = check(body, request)
        except BodyTooLarge as err:
            return _refused(provider, 413, "invalid", str(err))
        except _Refused as err:
            return _refused(provider, err.status, err.result, str(err))
        except SignatureInvalid as err:
            return _refused(provider, 401, "unauthorized", str(err))
        answer = None
        try:
            answer = await _answer(provider, request, records_of)
            return answer
        finally:
            if answer is None or answer.status_code == 503:
                verifier.release(verified)
            else:
                verifier.mark_used(verified)

    def mailgun_check(body: bytes, _request: Request) -> tuple[Verified, RecordsOf]:
        # Mailgun's signature sits inside the JSON body and covers only its timestamp and token.
        document = _parse(body)
        if not isinstance(document, dict):
            raise _Refused(400, "invalid", "body: must be a JSON object with signature and event-data")
        return mailgun.verify(document.get("signature")), partial(mailgun_records, document.get("event-data"))

    def sendgrid_check(body: bytes, request: Request) -> tuple[Verified, RecordsOf]:
        # The signature covers the raw bytes: checked before the body is parsed at all.
        headers = request.headers
        verified = sendgrid.verify(body, headers.get(SENDGRID_SIGNATURE_HEADER), headers.get(SENDGRID_TIMESTAMP_HEADER))
        return verified, partial(_sendgrid_records, body)

    @api.post("/mailgun", **openapi.MAILGUN_WEBHOOK)
    async def mailgun_webhook(request: Request) -> Response:
        """Mailgun webhooks (JSON): one event per request."""
        if mailgun is None:
            return _unconfigured("mailgun", "Mailgun")
        return await handle("mailgun", request, mailgun, mailgun_check)

    @api.post("/sendgrid", **openapi.SENDGRID_WEBHOOK)
    async def sendgrid_webhook(request: Request) -> Response:
        """SendGrid Signed Event Webhook: a JSON array of events per request."""
        if sendgrid is None:
            return _unconfigured("sendgrid", "SendGrid")
        return await handle("sendgrid", request, sendgrid, sendgrid_check)

    return api
