"""Proof that a webhook request came from the provider, checked before anything in it is trusted.

Mailgun signs a timestamp and a one-time token (HMAC-SHA256 with the webhook signing key); the signature
sits in the JSON body but does not cover the event, so a token is accepted only once. SendGrid signs the
timestamp header followed by the raw body (ECDSA P-256 / SHA-256) with a key pair whose public half it
shows in its settings; a signature is accepted only once too, known by its (r, s) with s folded into the
lower half of the group order, since (r, n - s) verifies as well and base64 spells the same bytes several ways.

Both refuse a timestamp that is not 1 to 12 ASCII digits, or is more than `TOLERANCE_S` from now, so a
captured request cannot be replayed later; within that window a replay is refused by remembering its key.
`verify` reserves the key in the same synchronous step that checks it, so of concurrent copies of one request
only one gets through. The caller then marks the key used (the request was answered for good) or releases it
(not handled: a provider retrying a request answered 503 is not taken for a replay).

The memory is per process: with several gateway processes a replay could reach another one within the window.
A SendGrid replay only repeats a signed batch, which readers drop by provider_event_id; a Mailgun token could
carry one other event per process, as its signature does not cover the event.
"""
import base64
import binascii
import hashlib
import hmac
import re
import time
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

TOLERANCE_S = 300
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# Far above what an authentic provider sends within the window; bounds memory whatever happens.
MAX_REMEMBERED = 200_000
# Seconds since the epoch: str.isdigit() takes "²" and int() refuses over 4,300 digits, so only these pass.
_SECONDS = re.compile(r"[0-9]{1,12}")
_HMAC_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# Mailgun's tokens are 50 hex digits.
MAX_TOKEN_CHARS = 256
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class SignatureInvalid(Exception):
    """The request is not provably the provider's (answered 401 with this reason)."""


class WebhookKeyInvalid(ValueError):
    """A configured webhook key cannot be used; the gateway refuses to start with it."""


@dataclass(frozen=True, slots=True)
class Verified:
    """A request proven to be the provider's, its replay key reserved: pass it to `mark_used` or `release`."""

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
    """Replay keys of requests being handled, and of requests answered for good until they are stale anyway."""

    def __init__(self) -> None:
        self._in_flight: set[str] = set()
        self._used = RecentlySeen()

    def _reserve(self, verified: Verified, now: float, what: str) -> Verified:
        _fresh(verified.timestamp, now)
        if verified.replay_key in self._used:
            raise SignatureInvalid(f"{what} was already used: a replayed request")
        if verified.replay_key in self._in_flight:
            raise SignatureInvalid(f"{what} is in a request being handled: a replayed request")
        self._in_flight.add(verified.replay_key)
        return verified

    def mark_used(self, verified: Verified, now: float | None = None) -> None:
        """Refuse this key from now on; call once the request was answered for good (handled, or refused
        for what it carries). Never blocks."""
        self._in_flight.discard(verified.replay_key)
        self._used.add(verified.replay_key, verified.timestamp, time.time() if now is None else now)

    def release(self, verified: Verified) -> None:
        """Let this key through again; call when the request was not handled, so the provider's retry passes."""
        self._in_flight.discard(verified.replay_key)


def _timestamp(raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < 10**12:
        return raw
    if isinstance(raw, str) and _SECONDS.fullmatch(raw):
        return int(raw)
    raise SignatureInvalid("timestamp: missing or not a number of seconds (1 to 12 ASCII digits)")


def _token(raw: object) -> str:
    if isinstance(raw, str) and 0 < len(raw) <= MAX_TOKEN_CHARS and raw.isascii() and raw.isprintable():
        return raw
    raise SignatureInvalid(f"signature.token: must be 1 to {MAX_TOKEN_CHARS} printable ASCII characters")


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
        """Raises SignatureInvalid unless `signature` is Mailgun's, recent, and its token neither used nor in a
        request being handled; reserves the token otherwise. Never blocks."""
        now = time.time() if now is None else now
        if not isinstance(signature, dict):
            raise SignatureInvalid("signature: missing; expected {timestamp, token, signature}")
        timestamp, token = _timestamp(signature.get("timestamp")), _token(signature.get("token"))
        digest = signature.get("signature")
        if not (isinstance(digest, str) and _HMAC_SHA256_HEX.fullmatch(digest)):
            raise SignatureInvalid("signature.signature: must be 64 hex digits (an HMAC-SHA256)")
        expected = hmac.new(self._key, f"{signature['timestamp']}{token}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, digest.lower()):
            raise SignatureInvalid("signature does not match the signing key")
        return self._reserve(Verified(token, timestamp), now, "signature token")


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
        """Raises SignatureInvalid unless SendGrid signed `timestamp + body` recently, and this signature, whatever
        its spelling, is neither used nor in a request being handled (ECDSA signatures are randomised: the same
        signature means the same request); reserves it otherwise. Never blocks."""
        now = time.time() if now is None else now
        if not signature or not timestamp:
            raise SignatureInvalid(f"{SENDGRID_SIGNATURE_HEADER} and {SENDGRID_TIMESTAMP_HEADER} headers are required")
        seconds = _timestamp(timestamp)
        der, replay_key = _ecdsa_signature(signature)
        try:
            self._key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise SignatureInvalid("signature does not match the body and the public key") from None
        return self._reserve(Verified(replay_key, seconds), now, "signature")


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
