"""Mailgun's webhooks as Mailgun sends them: one JSON POST per event, `{"signature", "event-data"}`.

The signature is the hex HMAC-SHA256, keyed with the webhook signing key, of the timestamp followed by a
random token; it does not cover `event-data`.
"""
import hashlib
import hmac
import secrets
import time
from typing import Any, ClassVar

import orjson

from providers.sandbox.mailbox import Received
from providers.sandbox.webhooks import CLICKED_URL, Stage, WebhookRequest, fate
from schemas.vocabulary import Bounce, FeedbackEvent

# Mailgun reports every failure as `failed`, told apart by its severity.
_EVENT_NAMES = {event: str(event) for event in FeedbackEvent} | {FeedbackEvent.BOUNCED: "failed"}
_FAILURES = {
    Bounce.HARD: {"severity": "permanent", "reason": "bounce", "log-level": "error", "delivery-status": {
        "attempt-no": 1, "code": 550, "description": "",
        "message": "5.1.1 The email account that you tried to reach does not exist.", "session-seconds": 0.2}},
    Bounce.SOFT: {"severity": "temporary", "reason": "generic", "log-level": "warn", "delivery-status": {
        "attempt-no": 1, "code": 452, "description": "", "retry-seconds": 600,
        "message": "4.2.2 The email account that you tried to reach is over quota.", "session-seconds": 0.2}},
}
_READER = {"ip": "192.0.2.10", "geolocation": {"country": "US", "region": "CA", "city": "San Francisco"},
           "client-info": {"client-type": "browser", "client-os": "Linux", "device-type": "desktop",
                           "client-name": "Firefox", "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}}


class MailgunWebhooks:
    secret_name: ClassVar[str] = "signing-key"

    def __init__(self, signing_key: str) -> None:
        """Raises ValueError for an empty key."""
        if not signing_key:
            raise ValueError("the Mailgun webhook signing key is empty")
        self._key = signing_key.encode()

    def requests(self, message_id: str, mail: Received) -> list[WebhookRequest]:
        return [self._signed(self._event_data(stage, message_id, mail, recipient))
                for recipient in mail.recipients for stage in fate(recipient)]

    def _signed(self, event_data: dict[str, Any]) -> WebhookRequest:
        timestamp, token = str(int(time.time())), secrets.token_hex(25)
        signature = hmac.new(self._key, f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
        body = orjson.dumps({"signature": {"timestamp": timestamp, "token": token, "signature": signature},
                             "event-data": event_data})
        return WebhookRequest(body, {"Content-Type": "application/json"}, (event_data["event"],))

    @staticmethod
    def _event_data(stage: Stage, message_id: str, mail: Received, recipient: str) -> dict[str, Any]:
        event, bounce = stage
        domain = recipient.rpartition("@")[2]
        data: dict[str, Any] = {
            "id": secrets.token_urlsafe(16)[:22],
            "timestamp": time.time(),
            "log-level": "info",
            "event": _EVENT_NAMES[event],
            "recipient": recipient,
            "recipient-domain": domain,
            "tags": [],
            "campaigns": [],
            "user-variables": dict(mail.custom),
            "flags": {"is-authenticated": True, "is-routed": False, "is-system-test": False, "is-test-mode": False},
            "envelope": {"transport": "smtp", "sender": mail.sender, "targets": recipient},
            "message": {
                "headers": {"to": ", ".join(mail.recipients), "message-id": message_id, "from": mail.sender,
                            "subject": mail.subject},
                "attachments": [],
                "size": len(mail.text.encode()),
            },
        }
        if event is FeedbackEvent.DELIVERED:
            data["delivery-status"] = {"tls": True, "mx-host": f"mx.{domain}", "attempt-no": 1, "description": "",
                                       "session-seconds": 0.2, "code": 250, "message": "OK",
                                       "certificate-verified": True}
        elif event is FeedbackEvent.BOUNCED:
            data |= _FAILURES[bounce]
        elif event in (FeedbackEvent.OPENED, FeedbackEvent.CLICKED):
            data |= _READER
            if event is FeedbackEvent.CLICKED:
                data["url"] = CLICKED_URL
        return data
