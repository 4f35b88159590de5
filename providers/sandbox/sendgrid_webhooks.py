"""SendGrid's Signed Event Webhook as SendGrid sends it: a JSON array of events per POST, ending in CRLF.

`X-Twilio-Email-Event-Webhook-Signature` is the base64 DER ECDSA P-256 / SHA-256 signature of the
`X-Twilio-Email-Event-Webhook-Timestamp` value followed by the raw body. Each message's events go in one
batch, `processed` first; `sg_message_id` is the send's X-Message-Id followed by `.filterdrecv-...`.
"""
import base64
import binascii
import itertools
import secrets
import time
from typing import Any, ClassVar

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_private_key, load_pem_private_key

from providers.sandbox.mailbox import Received
from providers.sandbox.webhooks import CLICKED_URL, Stage, WebhookRequest, fate
from schemas.vocabulary import Bounce, FeedbackEvent

_BY_STAGE: dict[Stage, list[dict[str, Any]]] = {
    (FeedbackEvent.DELIVERED, None): [{"event": "delivered", "response": "250 2.0.0 OK", "tls": 1}],
    (FeedbackEvent.BOUNCED, Bounce.HARD): [{
        "event": "bounce", "type": "bounce", "status": "5.1.1", "bounce_classification": "Invalid Address",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist."}],
    # The receiving server defers first; SendGrid reports the block once it stops trying.
    (FeedbackEvent.BOUNCED, Bounce.SOFT): [
        {"event": "deferred", "response": "452 4.2.2 The email account that you tried to reach is over quota.",
         "attempt": "1"},
        {"event": "bounce", "type": "blocked", "status": "4.2.2", "bounce_classification": "Technical",
         "reason": "452 4.2.2 The email account that you tried to reach is over quota."}],
    (FeedbackEvent.COMPLAINED, None): [{"event": "spamreport"}],
    (FeedbackEvent.OPENED, None): [{"event": "open", "sg_machine_open": False, "ip": "192.0.2.10",
                                    "useragent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}],
    (FeedbackEvent.CLICKED, None): [{"event": "click", "url": CLICKED_URL, "url_offset": {"index": 0, "type": "text"},
                                     "ip": "192.0.2.10", "useragent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}],
    (FeedbackEvent.UNSUBSCRIBED, None): [{"event": "unsubscribe"}],
}


def load_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key, PEM or base64 DER (PKCS#8); raises ValueError without echoing the key."""
    try:
        if "BEGIN" in text:
            key = load_pem_private_key(text.encode(), password=None)
        else:
            key = load_der_private_key(base64.b64decode("".join(text.split()), validate=True), password=None)
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm) as err:
        raise ValueError(f"the SendGrid webhook private key does not load ({type(err).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the SendGrid webhook private key is not an ECDSA P-256 key")
    return key


class SendGridWebhooks:
    secret_name: ClassVar[str] = "private-key"

    def __init__(self, private_key: str) -> None:
        self._key = load_private_key(private_key)
        self._sequence = itertools.count(1)

    def requests(self, message_id: str, mail: Received) -> list[WebhookRequest]:
        events = [event for recipient in mail.recipients for event in self._events(message_id, mail, recipient)]
        return [self._signed(events)]

    def _events(self, message_id: str, mail: Received, recipient: str) -> list[dict[str, Any]]:
        now = int(time.time())
        common = {
            "email": recipient,
            "smtp-id": f"<{message_id}@ismtpd0001p1sandbox.sendgrid.net>",
            "sg_message_id": f"{message_id}.filterdrecv-sandbox-{next(self._sequence)}-{now:X}-0.0",
            # custom_args come back as top-level fields of every event.
            **mail.custom,
        }
        shapes = [{"event": "processed"}, *(shape for stage in fate(recipient) for shape in _BY_STAGE[stage])]
        return [{**common, **shape, "timestamp": now, "sg_event_id": secrets.token_urlsafe(24)} for shape in shapes]

    def _signed(self, events: list[dict[str, Any]]) -> WebhookRequest:
        body = orjson.dumps(events) + b"\r\n"
        timestamp = str(int(time.time()))
        signature = self._key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }
        return WebhookRequest(body, headers, tuple(event["event"] for event in events))
