"""Proof that a webhook request came from the provider, checked before anything in it is trusted.

Mailgun signs a timestamp and a one-time token (HMAC-SHA256 with the webhook signing key); the signature
sits in the JSON body but does not cover the event, so a token is accepted only once. SendGrid signs the
timestamp header followed by the raw body (ECDSA P-256 / SHA-256) with a key pair whose public half it
shows in its settings. Both refuse a timestamp more than `TOLERANCE_S` from now, so a captured request
cannot be replayed later; within that window a replay is refused by remembering what was handled. A request
is remembered only once it was handled: a provider retrying a request answered 503 is not taken for a replay.

The memory of seen tokens is per process: with several gateway processes a replay could reach another one
within the window. That costs nothing but a duplicate record, which readers drop by provider_event_id.
"""
import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

TOLERANCE_S = 300
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# Far above what an authentic provider sends within the window; bounds memory whatever happens.
MAX_REMEMBERED = 200_000


class SignatureInvalid(Exception):
    """The request is not provably the provider's (answered 401 with this reason)."""


class WebhookKeyInvalid(ValueError):
    """A configured webhook key cannot be used; the gateway refuses to start with it."""


@dataclass(frozen=True, slots=True)
class Verified:
    """A request proven to be the provider's; pass it to `mark_used` once the request was handled."""

    replay_key: str
    timestamp: int


class RecentlySeen:
    """Values of handled requests, forgotten once their timestamp falls out of the tolerance window."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._limit = limit

    def __contains__(self, value: str) -> bool:
        return value in self._expiry

    def add(self, value: str, timestamp: float, now: float) -> None:
        while self._expiry and (next(iter(self._expiry.values())) < now or len(self._expiry) >= self._limit):
            self._expiry.popitem(last=False)
        self._expiry[value] = timestamp + TOLERANCE_S


class _ReplayGuard:
    def __init__(self) -> None:
        self._handled = RecentlySeen()

    def _check_replay(self, verified: Verified, now: float, what: str) -> Verified:
        _fresh(verified.timestamp, now)
        if verified.replay_key in self._handled:
            raise SignatureInvalid(f"{what} was already used: a replayed request")
        return verified

    def mark_used(self, verified: Verified, now: float | None = None) -> None:
        """Refuse this request from now on; call once it was handled (published, or nothing to publish)."""
        self._handled.add(verified.replay_key, verified.timestamp, time.time() if now is None else now)


def _timestamp(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    raise SignatureInvalid("timestamp: missing or not a number of seconds")


def _fresh(timestamp: int, now: float) -> None:
    if abs(now - timestamp) > TOLERANCE_S:
        raise SignatureInvalid(f"timestamp {timestamp} is more than {TOLERANCE_S} s from now")


class MailgunVerifier(_ReplayGuard):
    """Checks the `signature` object of a Mailgun webhook body."""

    def __init__(self, signing_key: str) -> None:
        if not signing_key:
            raise WebhookKeyInvalid("the Mailgun webhook signing key is empty")
        super().__init__()
        self._key = signing_key.encode()

    def verify(self, signature: object, now: float | None = None) -> Verified:
        """Raises SignatureInvalid unless `signature` is Mailgun's, recent, and its token not used. Never blocks."""
        now = time.time() if now is None else now
        if not isinstance(signature, dict):
            raise SignatureInvalid("signature: missing; expected {timestamp, token, signature}")
        token, digest = signature.get("token"), signature.get("signature")
        if not (isinstance(token, str) and token and isinstance(digest, str) and digest):
            raise SignatureInvalid("signature.token and signature.signature must be non-empty strings")
        timestamp = _timestamp(signature.get("timestamp"))
        expected = hmac.new(self._key, f"{signature['timestamp']}{token}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, digest.lower()):
            raise SignatureInvalid("signature does not match the signing key")
        return self._check_replay(Verified(token, timestamp), now, "signature token")


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


class SendGridVerifier(_ReplayGuard):
    """Checks the Signed Event Webhook headers against the raw request body."""

    def __init__(self, public_key: str) -> None:
        super().__init__()
        self._key = load_sendgrid_public_key(public_key)

    def verify(
        self, body: bytes, signature: str | None, timestamp: str | None, now: float | None = None
    ) -> Verified:
        """Raises SignatureInvalid unless SendGrid signed `timestamp + body` recently, and this exact request
        (ECDSA signatures are randomised: the same signature means the same request) was not handled yet.
        Never blocks."""
        now = time.time() if now is None else now
        if not signature or not timestamp:
            raise SignatureInvalid(f"{SENDGRID_SIGNATURE_HEADER} and {SENDGRID_TIMESTAMP_HEADER} headers are required")
        try:
            der = base64.b64decode(signature, validate=True)
        except binascii.Error:
            raise SignatureInvalid(f"{SENDGRID_SIGNATURE_HEADER} is not base64") from None
        try:
            self._key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise SignatureInvalid("signature does not match the body and the public key") from None
        return self._check_replay(Verified(signature, _timestamp(timestamp)), now, "signature")
