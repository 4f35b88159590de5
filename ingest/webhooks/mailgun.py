"""Mailgun's JSON webhooks: one event per request, signed inside the body.

Mailgun signs a timestamp and a one-time token (HMAC-SHA256 with the webhook signing key); the signature
sits in the JSON body but does not cover the event, so a token is accepted only once. The memory of used tokens
is per process (ingest.webhooks.common): with several gateway processes a token could carry one other event per
process, as its signature does not cover the event.
"""
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from functools import partial

from ingest.webhooks.common import (
    PayloadInvalid,
    RecordsOf,
    ReplayGuard,
    SignatureInvalid,
    Verified,
    WebhookKeyInvalid,
    WebhookRefused,
    epoch_ms,
    feedback_record,
    optional_text,
    parse_payload,
    required_text,
    timestamp_seconds,
)
from schemas.vocabulary import Bounce, FeedbackEvent

_HMAC_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# Mailgun's tokens are 50 hex digits.
MAX_TOKEN_CHARS = 256

_MAILGUN_EVENTS = {
    "delivered": FeedbackEvent.DELIVERED,
    "failed": FeedbackEvent.BOUNCED,
    "complained": FeedbackEvent.COMPLAINED,
    "opened": FeedbackEvent.OPENED,
    "clicked": FeedbackEvent.CLICKED,
    "unsubscribed": FeedbackEvent.UNSUBSCRIBED,
}
_MAILGUN_SEVERITY = {"permanent": Bounce.HARD, "temporary": Bounce.SOFT}


def _token(raw: object) -> str:
    if isinstance(raw, str) and 0 < len(raw) <= MAX_TOKEN_CHARS and raw.isascii() and raw.isprintable():
        return raw
    raise SignatureInvalid(f"signature.token: must be 1 to {MAX_TOKEN_CHARS} printable ASCII characters")


class MailgunVerifier(ReplayGuard):
    """Checks the `signature` object of a Mailgun webhook body."""

    def __init__(self, signing_key: str) -> None:
        if not signing_key:
            raise WebhookKeyInvalid("the Mailgun webhook signing key is empty")
        super().__init__()
        self._key = signing_key.encode()

    def verify(self, signature: object, now: float | None = None) -> Verified:
        """Raises SignatureInvalid unless `signature` is Mailgun's, recent, and its token neither used nor in a
        request being handled; reserves the token otherwise. Never blocks."""
        now = time.time() if now is None else now
        if not isinstance(signature, dict):
            raise SignatureInvalid("signature: missing; expected {timestamp, token, signature}")
        timestamp, token = timestamp_seconds(signature.get("timestamp")), _token(signature.get("token"))
        digest = signature.get("signature")
        if not (isinstance(digest, str) and _HMAC_SHA256_HEX.fullmatch(digest)):
            raise SignatureInvalid("signature.signature: must be 64 hex digits (an HMAC-SHA256)")
        expected = hmac.new(self._key, f"{signature['timestamp']}{token}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, digest.lower()):
            raise SignatureInvalid("signature does not match the signing key")
        return self._reserve(Verified(token, timestamp), now, "signature token")

    def check(self, body: bytes, _headers: Mapping[str, str]) -> tuple[Verified, RecordsOf]:
        """The request's body verified, its token reserved, and what reads its records from it; raises
        WebhookRefused (SignatureInvalid included) and reserves nothing then. Nothing raises once the token is
        reserved: anything left to refuse is left to the records' reader."""
        # Mailgun's signature sits inside the JSON body and covers only its timestamp and token.
        document = parse_payload(body)
        if not isinstance(document, dict):
            raise WebhookRefused(400, "body: must be a JSON object with signature and event-data")
        return self.verify(document.get("signature")), partial(mailgun_records, document.get("event-data"))


def mailgun_records(event_data: object, received_at: int) -> list[dict]:
    """The record for one Mailgun `event-data` object; none for events Mercury does not track.

    Raises PayloadInvalid naming the first missing or malformed field."""
    where = "event-data."
    if not isinstance(event_data, dict):
        raise PayloadInvalid("event-data", "required, a JSON object")
    event = _MAILGUN_EVENTS.get(required_text(event_data, "event", where))
    if event is None:
        return []
    message = event_data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    if not isinstance(headers, dict):
        raise PayloadInvalid(f"{where}message.headers", "required, a JSON object")
    bounce = reason = url = ""
    if event is FeedbackEvent.BOUNCED:
        severity = event_data.get("severity")
        if severity not in _MAILGUN_SEVERITY:
            raise PayloadInvalid(f"{where}severity", "must be permanent or temporary for a failed event")
        bounce = _MAILGUN_SEVERITY[severity]
        status = event_data.get("delivery-status")
        status = status if isinstance(status, dict) else {}
        reason = optional_text(status, "message", "description") or optional_text(event_data, "reason")
    if event is FeedbackEvent.CLICKED:
        url = required_text(event_data, "url", where)
    return [feedback_record(
        "mailgun", required_text(event_data, "id", where),
        required_text(headers, "message-id", f"{where}message.headers."), event,
        required_text(event_data, "recipient", where), epoch_ms(event_data, "timestamp", where), received_at,
        bounce=bounce, reason=reason, url=url,
    )]
