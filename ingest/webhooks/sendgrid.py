"""SendGrid's Signed Event Webhook: a JSON array of events per request, signed as raw bytes.

SendGrid signs the timestamp header followed by the raw body (ECDSA P-256 / SHA-256) with a key pair whose public
half it shows in its settings; a signature is accepted only once too, known by its (r, s) with s folded into the
lower half of the group order, since (r, n - s) verifies as well and base64 spells the same bytes several ways.
The memory of used signatures is per process (ingest.webhooks.common): a replay reaching another gateway process
only repeats a signed batch, which readers drop by provider_event_id.
"""
import base64
import binascii
import time
from collections.abc import Mapping
from functools import partial

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from ingest.webhooks.common import (
    PayloadInvalid,
    RecordsOf,
    ReplayGuard,
    SignatureInvalid,
    Verified,
    WebhookKeyInvalid,
    epoch_ms,
    feedback_record,
    optional_text,
    parse_payload,
    required_text,
    timestamp_seconds,
)
from schemas.vocabulary import Bounce, FeedbackEvent

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

_SENDGRID_EVENTS = {
    "delivered": FeedbackEvent.DELIVERED,
    "bounce": FeedbackEvent.BOUNCED,
    "dropped": FeedbackEvent.BOUNCED,
    "spamreport": FeedbackEvent.COMPLAINED,
    "open": FeedbackEvent.OPENED,
    "click": FeedbackEvent.CLICKED,
    "unsubscribe": FeedbackEvent.UNSUBSCRIBED,
    "group_unsubscribe": FeedbackEvent.UNSUBSCRIBED,
}


def load_sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER SubjectPublicKeyInfo), or PEM.

    Raises WebhookKeyInvalid for anything else, or for a key that is not on P-256."""
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as err:
        raise WebhookKeyInvalid(f"the SendGrid webhook public key does not load: {err}") from err
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise WebhookKeyInvalid("the SendGrid webhook public key is not an ECDSA P-256 key")
    return key


class SendGridVerifier(ReplayGuard):
    """Checks the Signed Event Webhook headers against the raw request body."""

    def __init__(self, public_key: str) -> None:
        super().__init__()
        self._key = load_sendgrid_public_key(public_key)

    def verify(
        self, body: bytes, signature: str | None, timestamp: str | None, now: float | None = None
    ) -> Verified:
        """Raises SignatureInvalid unless SendGrid signed `timestamp + body` recently, and this signature, whatever
        its spelling, is neither used nor in a request being handled (ECDSA signatures are randomised: the same
        signature means the same request); reserves it otherwise. Never blocks."""
        now = time.time() if now is None else now
        if not signature or not timestamp:
            raise SignatureInvalid(f"{SENDGRID_SIGNATURE_HEADER} and {SENDGRID_TIMESTAMP_HEADER} headers are required")
        seconds = timestamp_seconds(timestamp)
        der, replay_key = _ecdsa_signature(signature)
        try:
            self._key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise SignatureInvalid("signature does not match the body and the public key") from None
        return self._reserve(Verified(replay_key, seconds), now, "signature")

    def check(self, body: bytes, headers: Mapping[str, str]) -> tuple[Verified, RecordsOf]:
        """The request's body verified against its headers, its signature reserved, and what reads its records
        from it; raises SignatureInvalid and reserves nothing then. Nothing raises once the signature is reserved:
        anything left to refuse is left to the records' reader."""
        # The signature covers the raw bytes: checked before the body is parsed at all.
        verified = self.verify(body, headers.get(SENDGRID_SIGNATURE_HEADER), headers.get(SENDGRID_TIMESTAMP_HEADER))
        return verified, partial(_body_records, body)


def _ecdsa_signature(header: str) -> tuple[bytes, str]:
    """The DER signature in the header, and the key it is remembered by: the same for every spelling of it."""
    try:
        der = base64.b64decode(header, validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise SignatureInvalid(f"{SENDGRID_SIGNATURE_HEADER} is not base64") from None
    try:
        r, s = decode_dss_signature(der)
    except ValueError:
        raise SignatureInvalid(f"{SENDGRID_SIGNATURE_HEADER} is not a DER-encoded ECDSA signature") from None
    return der, f"{r:x}:{min(s, P256_ORDER - s):x}"


def _body_records(body: bytes, received_at: int) -> list[dict]:
    return sendgrid_records(parse_payload(body), received_at)


def sendgrid_records(batch: object, received_at: int) -> list[dict]:
    """The records for a SendGrid event batch (a JSON array), in its order; none for events not tracked.

    Raises PayloadInvalid naming the first missing or malformed field (as `[index].field`)."""
    if not isinstance(batch, list):
        raise PayloadInvalid("body", "must be a JSON array of events")
    records = []
    for index, item in enumerate(batch):
        where = f"[{index}]."
        if not isinstance(item, dict):
            raise PayloadInvalid(f"[{index}]", "each event must be a JSON object")
        event = _SENDGRID_EVENTS.get(required_text(item, "event", where))
        if event is None:
            continue
        bounce = reason = url = ""
        if event is FeedbackEvent.BOUNCED:
            # A block is the receiving server refusing for now (reputation, rate); a bounce or a drop is final.
            bounce = Bounce.SOFT if item.get("type") == "blocked" else Bounce.HARD
            reason = optional_text(item, "reason", "response")
        if event is FeedbackEvent.CLICKED:
            url = required_text(item, "url", where)
        records.append(feedback_record(
            "sendgrid", required_text(item, "sg_event_id", where), required_text(item, "sg_message_id", where),
            event, required_text(item, "email", where), epoch_ms(item, "timestamp", where), received_at,
            bounce=bounce, reason=reason, url=url,
        ))
    return records
