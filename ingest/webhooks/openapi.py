"""What `/openapi.json` says about the webhook endpoints, built with the gateway's shared helpers (ingest.openapi).

The endpoints read their body as raw bytes (the signature covers them), so FastAPI cannot see it; the models
below document it without changing what the endpoints accept. `MODELS` are the components the entries refer to.
"""
from typing import Annotated, Any

from pydantic import Field
from typing_extensions import TypedDict

from ingest.openapi import JSON, RETRY_AFTER, TOO_LARGE, answer_doc, body_doc, error_doc
from ingest.webhooks.sendgrid import SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER


class MailgunSignature(TypedDict):
    timestamp: str
    token: str
    signature: Annotated[str, Field(description="HMAC-SHA256 of timestamp + token, hex, with the signing key")]


# Mailgun's JSON webhook: one event, signed inside the body (a key with a dash needs the functional form).
MailgunWebhookBody = TypedDict("MailgunWebhookBody", {"signature": MailgunSignature, "event-data": dict[str, Any]})


class WebhookAnswer(TypedDict):
    published: Annotated[int, Field(description="records published to mail.feedback")]


MODELS = (MailgunWebhookBody, WebhookAnswer)

_WEBHOOK_ANSWERS = {
    200: answer_doc(WebhookAnswer, "published, or nothing to publish"),
    400: error_doc("the body is not the provider's shape; the answer names the field when it can"),
    401: error_doc("the signature is missing, wrong, too old or already used"),
    413: TOO_LARGE,
    503: error_doc("the webhook is not configured, or the feedback stream is unavailable; the provider retries",
                   RETRY_AFTER),
}
MAILGUN_WEBHOOK = {"openapi_extra": body_doc(MailgunWebhookBody), "responses": _WEBHOOK_ANSWERS}
SENDGRID_WEBHOOK = {
    "openapi_extra": {
        "parameters": [
            {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
            for name, text in ((SENDGRID_SIGNATURE_HEADER, "base64 ECDSA signature of timestamp + body"),
                               (SENDGRID_TIMESTAMP_HEADER, "seconds since the epoch"))
        ],
        "requestBody": {"required": True, "content": {JSON: {"schema": {
            "type": "array", "items": {"type": "object"}, "description": "SendGrid's events, signed as raw bytes"}}}},
    },
    "responses": _WEBHOOK_ANSWERS,
}
