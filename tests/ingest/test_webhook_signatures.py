"""Webhook verification and normalisation against payloads shaped like the providers' documented examples."""
import base64
import hashlib
import hmac
import secrets
import time

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ingest.webhooks.common import TOLERANCE_S, PayloadInvalid, SignatureInvalid, WebhookKeyInvalid
from ingest.webhooks.mailgun import MailgunVerifier, mailgun_records
from ingest.webhooks.sendgrid import SendGridVerifier, sendgrid_records
from schemas import codec
from schemas.message_ids import normalise_message_id

RECEIVED_AT = 1_767_225_600_000
# SendGrid's own published test vector (sendgrid-python test/unit/test_eventwebhook.py): proves the
# verification matches what SendGrid signs, byte for byte, trailing CRLF included.
SENDGRID_VECTOR_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+"
                       "2fNNRaINXvVpiglSI8eNEc6wEA3F+g==")
SENDGRID_VECTOR_SIGNATURE = ("MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15T"
                             "luLtEZtM=")
SENDGRID_VECTOR_TIMESTAMP = "1600112502"
SENDGRID_VECTOR_BODY = (
    b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","sg_event_id":'
    b'"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA","sg_message_id":'
    b'"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","smtp-id":'
    b'"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n'
)


def mailgun_signature(key: str, timestamp: int | None = None, token: str | None = None) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    digest = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": stamp, "token": token, "signature": digest}


def mailgun_event(event: str, **extra: object) -> dict:
    """Shaped like Mailgun's documented webhook examples."""
    return {
        "id": secrets.token_urlsafe(16)[:22],
        "timestamp": 1521472262.908181,
        "log-level": "info",
        "event": event,
        "recipient": "alice@example.com",
        "recipient-domain": "example.com",
        "user-variables": {"mercury-id": "m-1"},
        "message": {"headers": {"to": "Alice <alice@example.com>", "from": "Bob <bob@mg.example.com>",
                                "message-id": "20130503182626.18666.16540@mg.example.com", "subject": "Hi"},
                    "attachments": [], "size": 111},
        **extra,
    }


class SendGridSigner:
    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        self.public = base64.b64encode(der).decode()

    def sign(self, body: bytes, timestamp: int | None = None) -> tuple[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode(), stamp


def sendgrid_event(event: str, **extra: object) -> dict:
    """Shaped like SendGrid's documented Event Webhook examples."""
    return {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "smtp-id": "<W86EgYT6SQKk0lRflfLRsA@ismtpd0001p1lon1.sendgrid.net>",
        "event": event,
        "category": "cat facts",
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": "W86EgYT6SQKk0lRflfLRsA.filterdrecv-p3las1-5bf99c48d-k7xxt-21-5BF5E0E7-3C.0",
        "mercury_id": "m-1",
        **extra,
    }


def test_a_mailgun_signature_made_with_the_signing_key_is_accepted():
    key = secrets.token_hex(32)
    MailgunVerifier(key).verify(mailgun_signature(key))


@pytest.mark.parametrize("tamper, reason", [
    (lambda s: {**s, "signature": "0" * 64}, "does not match"),
    (lambda s: {**s, "token": s["token"] + "x"}, "does not match"),
    (lambda s: {**s, "timestamp": str(int(s["timestamp"]) + 1)}, "does not match"),
    (lambda s: {k: v for k, v in s.items() if k != "token"}, "signature.token"),
    (lambda s: "not an object", "missing"),
])
def test_a_tampered_mailgun_signature_is_refused(tamper, reason):
    key = secrets.token_hex(32)
    with pytest.raises(SignatureInvalid, match=reason):
        MailgunVerifier(key).verify(tamper(mailgun_signature(key)))


def test_a_mailgun_signature_made_with_another_key_is_refused():
    with pytest.raises(SignatureInvalid, match="does not match"):
        MailgunVerifier(secrets.token_hex(32)).verify(mailgun_signature(secrets.token_hex(32)))


def test_a_stale_or_future_mailgun_timestamp_is_refused_even_when_signed():
    key = secrets.token_hex(32)
    verifier = MailgunVerifier(key)
    now = time.time()
    for offset in (-TOLERANCE_S - 5, TOLERANCE_S + 5):
        with pytest.raises(SignatureInvalid, match="from now"):
            verifier.verify(mailgun_signature(key, int(now + offset)), now=now)
    verifier.verify(mailgun_signature(key, int(now - TOLERANCE_S + 5)), now=now)


def test_a_mailgun_token_is_held_while_handled_freed_if_not_handled_and_spent_once_handled():
    key = secrets.token_hex(32)
    verifier = MailgunVerifier(key)
    signature = mailgun_signature(key)
    verified = verifier.verify(signature)
    with pytest.raises(SignatureInvalid, match="being handled"):
        verifier.verify(signature)
    # Not handled (say the broker was down and the answer 503): the provider's retry must get through.
    verifier.release(verified)
    assert verifier.verify(signature) == verified
    verifier.mark_used(verified)
    with pytest.raises(SignatureInvalid, match="already used"):
        verifier.verify(signature)
    with pytest.raises(SignatureInvalid, match="from now"):
        verifier.verify(signature, now=time.time() + TOLERANCE_S + 5)


def signed_with_timestamp(key: str, timestamp: object) -> dict:
    token = secrets.token_hex(25)
    digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": digest}


# str.isdigit() takes superscripts and other scripts' digits; int() refuses more than 4,300 digits.
@pytest.mark.parametrize("timestamp", ["\u00b2", "\u0661\u0662\u0663", "9" * 5000, "1" * 13, "-5", "+5", " 5", "5\n",
                                       "1.5", "", 1.5, True, None, [1], {"s": 1}, 10 ** 12])
def test_a_mailgun_timestamp_that_is_not_a_few_ascii_digits_is_refused_even_when_signed(timestamp):
    key = secrets.token_hex(32)
    with pytest.raises(SignatureInvalid, match="timestamp"):
        MailgunVerifier(key).verify(signed_with_timestamp(key, timestamp))


@pytest.mark.parametrize("field, value", [
    ("token", ["t"]), ("token", {"t": 1}), ("token", 7), ("token", "x" * 100_000), ("token", "to\x00ken"),
    ("token", "t\u00e9"), ("signature", "\u00e9" * 64), ("signature", ["0" * 64]), ("signature", "0" * 63),
    ("signature", "g" * 64), ("signature", "0" * 100_000),
])
def test_a_mailgun_token_or_signature_of_the_wrong_shape_is_refused(field, value):
    key = secrets.token_hex(32)
    with pytest.raises(SignatureInvalid, match=f"signature.{field}"):
        MailgunVerifier(key).verify({**mailgun_signature(key), field: value})


def test_sendgrids_published_test_vector_verifies():
    verifier = SendGridVerifier(SENDGRID_VECTOR_KEY)
    at_signing = int(SENDGRID_VECTOR_TIMESTAMP) + 10
    verifier.verify(SENDGRID_VECTOR_BODY, SENDGRID_VECTOR_SIGNATURE, SENDGRID_VECTOR_TIMESTAMP, now=at_signing)
    [record] = sendgrid_records(orjson.loads(SENDGRID_VECTOR_BODY), RECEIVED_AT)
    assert (record["event"], record["bounce"], record["reason"], record["message_id"]) == (
        "bounced", "hard", "Bounced Address", "LRzXl_NHStOGhQ4kofSm_A")
    with pytest.raises(SignatureInvalid, match="does not match"):
        verifier.verify(SENDGRID_VECTOR_BODY.rstrip(), SENDGRID_VECTOR_SIGNATURE, SENDGRID_VECTOR_TIMESTAMP,
                        now=at_signing)


def test_a_sendgrid_batch_signed_with_the_private_key_is_accepted():
    signer = SendGridSigner()
    body = orjson.dumps([sendgrid_event("delivered")]) + b"\r\n"
    SendGridVerifier(signer.public).verify(body, *signer.sign(body))


def test_a_pem_public_key_is_accepted_too():
    signer = SendGridSigner()
    pem = signer.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    body = b"[]"
    SendGridVerifier(pem).verify(body, *signer.sign(body))


def test_a_tampered_sendgrid_body_timestamp_or_signature_is_refused():
    signer = SendGridSigner()
    verifier = SendGridVerifier(signer.public)
    body = orjson.dumps([sendgrid_event("delivered")])
    signature, stamp = signer.sign(body)
    tampered = body.replace(b"delivered", b"bounce")
    for args, reason in [
        ((tampered, signature, stamp), "does not match"),
        ((body, signature, str(int(stamp) + 1)), "does not match"),
        ((body, signer.sign(tampered)[0], stamp), "does not match"),
        ((body, "not base64!", stamp), "not base64"),
        ((body, "\u00e9" * 96, stamp), "not base64"),
        ((body, base64.b64encode(b"garbage").decode(), stamp), "not a DER-encoded ECDSA signature"),
        ((body, base64.b64encode(signer.private.sign(b"x", ec.ECDSA(hashes.SHA256())) + b"\0").decode(), stamp),
         "not a DER-encoded ECDSA signature"),
        ((body, None, stamp), "headers are required"),
        ((body, signature, None), "headers are required"),
    ]:
        with pytest.raises(SignatureInvalid, match=reason):
            verifier.verify(*args)


def test_a_sendgrid_batch_signed_with_another_key_is_refused():
    body = b"[]"
    with pytest.raises(SignatureInvalid, match="does not match"):
        SendGridVerifier(SendGridSigner().public).verify(body, *SendGridSigner().sign(body))


def test_a_stale_or_replayed_sendgrid_request_is_refused():
    signer = SendGridSigner()
    verifier = SendGridVerifier(signer.public)
    body = b"[]"
    with pytest.raises(SignatureInvalid, match="from now"):
        verifier.verify(body, *signer.sign(body, int(time.time()) - TOLERANCE_S - 5))
    fresh = signer.sign(body)
    verified = verifier.verify(body, *fresh)
    with pytest.raises(SignatureInvalid, match="being handled"):
        verifier.verify(body, *fresh)
    verifier.release(verified)
    verifier.mark_used(verifier.verify(body, *fresh))
    with pytest.raises(SignatureInvalid, match="already used"):
        verifier.verify(body, *fresh)
    verifier.verify(body, *signer.sign(body))


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def twin(signature: str) -> str:
    """The other valid ECDSA signature of the same message: (r, n - s)."""
    r, s = decode_dss_signature(base64.b64decode(signature))
    return base64.b64encode(encode_dss_signature(r, P256_ORDER - s)).decode()


def respelled(signature: str) -> str:
    """The same bytes in another base64 spelling: the unused low bit of the last character before the padding set."""
    data = signature.rstrip("=")
    last = BASE64_ALPHABET.index(data[-1])
    return data[:-1] + BASE64_ALPHABET[last | 1] + signature[len(data):]


def padded_signature(signer: SendGridSigner, body: bytes) -> tuple[str, str]:
    """A signature whose base64 ends in padding, so that it has unused bits to respell."""
    while True:
        signature, stamp = signer.sign(body)
        if signature.endswith("="):
            return signature, stamp


def test_a_sendgrid_signature_is_refused_again_in_its_twin_form_or_another_base64_spelling():
    signer = SendGridSigner()
    verifier = SendGridVerifier(signer.public)
    body = b"[]"
    signature, stamp = padded_signature(signer, body)
    verifier.mark_used(verifier.verify(body, signature, stamp))
    for replay in (twin(signature), respelled(signature), twin(respelled(signature))):
        assert replay != signature
        with pytest.raises(SignatureInvalid, match="already used"):
            verifier.verify(body, replay, stamp)


@pytest.mark.parametrize("timestamp", ["\u00b2", "9" * 5000, "1" * 13, "-5", " 5", "1.5"])
def test_a_sendgrid_timestamp_that_is_not_a_few_ascii_digits_is_refused_even_when_signed(timestamp):
    signer = SendGridSigner()
    body = b"[]"
    signature = signer.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(SignatureInvalid, match="timestamp"):
        SendGridVerifier(signer.public).verify(body, base64.b64encode(signature).decode(), timestamp)


@pytest.mark.parametrize("key", ["", "not base64!", base64.b64encode(b"not a key").decode(),
                                 base64.b64encode(ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
                                     Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()])
def test_an_unusable_sendgrid_key_stops_the_gateway_at_start(key):
    with pytest.raises(WebhookKeyInvalid):
        SendGridVerifier(key)


def test_mailgun_events_normalise_into_the_shared_vocabulary():
    cases = [
        (mailgun_event("delivered", **{"delivery-status": {"code": 250, "message": "OK"}}), ("delivered", "", "", "")),
        (mailgun_event("failed", severity="permanent", reason="bounce", **{"delivery-status": {
            "code": 550, "message": "5.1.1 No such user", "description": ""}}),
         ("bounced", "hard", "5.1.1 No such user", "")),
        (mailgun_event("failed", severity="temporary", **{"delivery-status": {
            "message": "", "description": "Not delivering to previously bounced address"}}),
         ("bounced", "soft", "Not delivering to previously bounced address", "")),
        (mailgun_event("complained"), ("complained", "", "", "")),
        (mailgun_event("opened", ip="192.0.2.1"), ("opened", "", "", "")),
        (mailgun_event("clicked", url="https://example.com/offer"), ("clicked", "", "", "https://example.com/offer")),
        (mailgun_event("unsubscribed"), ("unsubscribed", "", "", "")),
    ]
    for data, (event, bounce, reason, url) in cases:
        [record] = mailgun_records(data, RECEIVED_AT)
        assert (record["event"], record["bounce"], record["reason"], record["url"]) == (event, bounce, reason, url)
        assert record["provider"] == "mailgun" and record["provider_event_id"] == data["id"]
        assert record["message_id"] == "20130503182626.18666.16540@mg.example.com"
        assert record["recipient"] == "alice@example.com"
        assert (record["occurred_at"], record["received_at"]) == (1521472262908, RECEIVED_AT)
        assert codec.decode(codec.encode("mercury.ProviderEvent", record)) == ("mercury.ProviderEvent", record)
    assert mailgun_records(mailgun_event("accepted"), RECEIVED_AT) == []
    assert mailgun_records(mailgun_event("stored"), RECEIVED_AT) == []


def test_sendgrid_events_normalise_into_the_shared_vocabulary_and_skip_the_rest():
    batch = [
        sendgrid_event("processed"),
        sendgrid_event("deferred", response="400 try again later", attempt="5"),
        sendgrid_event("delivered", response="250 OK"),
        sendgrid_event("bounce", type="bounce", reason="500 unknown recipient", status="5.0.0"),
        sendgrid_event("bounce", type="blocked", reason="421 rate limited", status="4.0.0"),
        sendgrid_event("dropped", reason="Bounced Address", status="5.0.0"),
        sendgrid_event("spamreport"),
        sendgrid_event("open", useragent="Mozilla/5.0", ip="255.255.255.255"),
        sendgrid_event("click", url="http://www.sendgrid.com/", url_offset={"index": 0, "type": "html"}),
        sendgrid_event("unsubscribe"),
        sendgrid_event("group_unsubscribe", asm_group_id=10),
        sendgrid_event("group_resubscribe", asm_group_id=10),
    ]
    records = sendgrid_records(batch, RECEIVED_AT)
    assert [(r["event"], r["bounce"], r["reason"], r["url"]) for r in records] == [
        ("delivered", "", "", ""),
        ("bounced", "hard", "500 unknown recipient", ""),
        ("bounced", "soft", "421 rate limited", ""),
        ("bounced", "hard", "Bounced Address", ""),
        ("complained", "", "", ""),
        ("opened", "", "", ""),
        ("clicked", "", "", "http://www.sendgrid.com/"),
        ("unsubscribed", "", "", ""),
        ("unsubscribed", "", "", ""),
    ]
    assert {r["message_id"] for r in records} == {"W86EgYT6SQKk0lRflfLRsA"}
    assert {(r["occurred_at"], r["recipient"]) for r in records} == {(1513299569000, "example@test.com")}
    assert len({r["id"] for r in records}) == len(records)
    assert [r["id"] for r in sendgrid_records(batch, RECEIVED_AT + 5)] == [r["id"] for r in records]


def test_a_long_reason_is_cut():
    [record] = sendgrid_records([sendgrid_event("bounce", type="bounce", reason="x" * 5000)], RECEIVED_AT)
    assert len(record["reason"]) == 500


@pytest.mark.parametrize("payload, field", [
    ({**mailgun_event("delivered"), "id": ""}, "event-data.id"),
    (mailgun_event("failed"), "event-data.severity"),
    (mailgun_event("clicked"), "event-data.url"),
    ({**mailgun_event("delivered"), "message": {}}, "event-data.message.headers"),
    ({**mailgun_event("delivered"), "timestamp": "yesterday"}, "event-data.timestamp"),
    ([], "event-data"),
])
def test_a_malformed_mailgun_event_names_its_field(payload, field):
    with pytest.raises(PayloadInvalid) as raised:
        mailgun_records(payload, RECEIVED_AT)
    assert raised.value.field == field


@pytest.mark.parametrize("payload, field", [
    ({"event": "delivered"}, "body"),
    ([sendgrid_event("delivered"), "x"], "[1]"),
    ([{k: v for k, v in sendgrid_event("open").items() if k != "sg_message_id"}], "[0].sg_message_id"),
    ([sendgrid_event("click")], "[0].url"),
    ([{**sendgrid_event("delivered"), "timestamp": True}], "[0].timestamp"),
    ([{"email": "a@b.c"}], "[0].event"),
])
def test_a_malformed_sendgrid_batch_names_its_field(payload, field):
    with pytest.raises(PayloadInvalid) as raised:
        sendgrid_records(payload, RECEIVED_AT)
    assert raised.value.field == field


@pytest.mark.parametrize("sent, reported", [
    ("<20260101120000.1.3F2A@sandbox.mercury.local>", "20260101120000.1.3F2A@sandbox.mercury.local"),
    ("W86EgYT6SQKk0lRflfLRsA", "W86EgYT6SQKk0lRflfLRsA.filterdrecv-p3las1-5bf99c48d-k7xxt-21-5BF5E0E7-3C.0"),
])
def test_the_id_a_send_answer_carries_and_the_id_a_webhook_carries_normalise_equal(sent, reported):
    assert normalise_message_id(sent) == normalise_message_id(reported) == sent.strip("<>")
