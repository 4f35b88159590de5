"""Attacks on the webhook endpoints over the wire, against a real gateway process: replays of captured
signatures, timestamps and fields crafted to crash the parsing, and bodies framed to get past the limit.

One worker (the replay memory is per process) and no broker reachable: a publish then takes a second and
fails, which holds a request in flight long enough for concurrent replays to meet it. Every refusal must be
a 4xx naming the problem."""
import base64
import hashlib
import hmac
import http.client
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_private_key

from deploy.processes import ManagedProcess, free_port, http_ok
from deploy.webhook_keys import WEBHOOK_PATH, WebhookKeys

ROOT = Path(__file__).resolve().parents[2]
# Room for a 5,000-digit timestamp, to reach the code that parses it.
MAX_BODY = 16 * 1024
KEYS = WebhookKeys.generate()
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
REPLAYS = 6


@pytest.fixture(scope="module")
def webhooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The webhooks URL of a gateway with both providers' keys, one worker and no broker."""
    port = free_port()
    env = {"MERCURY_INGEST_PORT": str(port), "MERCURY_INGEST_WORKERS": "1",
           "KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}", "MERCURY_KAFKA_DELIVERY_TIMEOUT_MS": "1000",
           "MERCURY_MAX_BODY_BYTES": str(MAX_BODY), **KEYS.ingest_env()}
    process = ManagedProcess("ingest-webhook-attacks", [sys.executable, "-m", "ingest"],
                             tmp_path_factory.mktemp("ingest"), env=env, cwd=ROOT,
                             ready=lambda: http_ok(f"http://127.0.0.1:{port}/api/v1.0/"), ready_timeout=30)
    process.start()
    yield f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    process.stop()


def mailgun_signature() -> dict:
    stamp, token = str(int(time.time())), secrets.token_hex(25)
    digest = hmac.new(KEYS.mailgun_signing_key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": stamp, "token": token, "signature": digest}


def delivered(event: str = "delivered") -> dict:
    return {"event": event, "id": secrets.token_hex(8), "timestamp": time.time(), "recipient": "a@example.com",
            "message": {"headers": {"message-id": "1.2@mg.example.com"}}}


def sendgrid_headers(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    stamp = str(int(time.time())) if timestamp is None else timestamp
    private = load_der_private_key(base64.b64decode(KEYS.sendgrid_private_key), None)
    signature = private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp}


def assert_refused(answer: requests.Response, status: int, reason: str) -> None:
    assert answer.status_code == status and reason in answer.json()["error"], (answer.status_code, answer.text)


def post_all_at_once(url: str, bodies: list[dict]) -> list[requests.Response]:
    start = threading.Barrier(len(bodies))

    def post(body: dict) -> requests.Response:
        start.wait(10)
        return requests.post(url, json=body, timeout=20)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def test_concurrent_replays_of_one_mailgun_token_with_other_events_let_only_one_through(webhooks: str):
    signature = mailgun_signature()
    bodies = [{"signature": signature, "event-data": delivered()} for _ in range(REPLAYS)]
    answers = post_all_at_once(f"{webhooks}/mailgun", bodies)
    # The one that got through reached the (unreachable) broker; the others were refused while it was in flight.
    passed = [n for n, answer in enumerate(answers) if answer.status_code == 503]
    assert len(passed) == 1, [answer.status_code for answer in answers]
    through = passed[0]
    for answer in answers[:through] + answers[through + 1:]:
        assert_refused(answer, 401, "replayed request")
    # It was not handled: the provider's retry of that request is no replay.
    retry = requests.post(f"{webhooks}/mailgun", json=bodies[through], timeout=20)
    assert retry.status_code == 503, retry.text


def test_a_mailgun_token_refused_for_its_event_cannot_carry_another_one(webhooks: str):
    signature = mailgun_signature()
    malformed = requests.post(f"{webhooks}/mailgun", json={"signature": signature,
                                                          "event-data": {**delivered(), "recipient": 7}}, timeout=10)
    assert_refused(malformed, 400, "recipient")
    forged = requests.post(f"{webhooks}/mailgun", json={"signature": signature, "event-data": delivered()},
                           timeout=10)
    assert_refused(forged, 401, "already used")


def twin(signature: str) -> str:
    """The other valid ECDSA signature of the same message: (r, n - s)."""
    r, s = decode_dss_signature(base64.b64decode(signature))
    return base64.b64encode(encode_dss_signature(r, P256_ORDER - s)).decode()


def test_a_handled_sendgrid_request_is_refused_again_with_its_signature_in_twin_form(webhooks: str):
    body = orjson.dumps([{"event": "processed"}])
    headers = sendgrid_headers(body)
    handled = requests.post(f"{webhooks}/sendgrid", data=body, headers=headers, timeout=10)
    assert handled.status_code == 200 and handled.json() == {"published": 0}, handled.text
    name = "X-Twilio-Email-Event-Webhook-Signature"
    replay = requests.post(f"{webhooks}/sendgrid", data=body, headers={**headers, name: twin(headers[name])},
                           timeout=10)
    assert_refused(replay, 401, "already used")


@pytest.mark.parametrize("timestamp", ["\u00b2", "9" * 5000, "1" * 13, "-5", "1.5", 1.5, None])
def test_a_mailgun_timestamp_crafted_to_break_parsing_is_refused(webhooks: str, timestamp: object):
    body = {"signature": {**mailgun_signature(), "timestamp": timestamp}, "event-data": delivered()}
    assert_refused(requests.post(f"{webhooks}/mailgun", json=body, timeout=10), 401, "timestamp")


@pytest.mark.parametrize("timestamp", ["\u00b2", "9" * 5000, "1" * 13])
def test_a_sendgrid_timestamp_crafted_to_break_parsing_is_refused_even_when_signed(webhooks: str, timestamp: str):
    body = b"[]"
    answer = requests.post(f"{webhooks}/sendgrid", data=body, headers=sendgrid_headers(body, timestamp), timeout=10)
    assert_refused(answer, 401, "timestamp")


@pytest.mark.parametrize("field, value, reason", [
    ("token", ["a", "b"], "signature.token"),
    ("token", {"a": 1}, "signature.token"),
    ("token", "x" * 3000, "signature.token"),
    ("signature", "\u00e9" * 64, "signature.signature"),
    ("signature", 12345, "signature.signature"),
])
def test_a_mailgun_token_or_signature_of_a_strange_type_is_refused(webhooks: str, field: str, value: object,
                                                                   reason: str):
    body = {"signature": {**mailgun_signature(), field: value}, "event-data": delivered()}
    assert_refused(requests.post(f"{webhooks}/mailgun", json=body, timeout=10), 401, reason)


@pytest.mark.parametrize("signature", ["\u00e9" * 96, base64.b64encode(b"not DER").decode(), "A" * 3000])
def test_a_sendgrid_signature_header_of_a_strange_shape_is_refused(webhooks: str, signature: str):
    answer = requests.post(f"{webhooks}/sendgrid", data=b"[]", timeout=10, headers={
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()))})
    assert_refused(answer, 401, "X-Twilio-Email-Event-Webhook-Signature")


def exchange(url: str, raw: bytes) -> tuple[int, dict]:
    """Send raw HTTP/1.1 bytes and read the first answer; a server still waiting for more fails the test."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=5) as sock:
        sock.sendall(raw)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, orjson.loads(answer.read())


def head(url: str, *headers: str) -> bytes:
    lines = [f"POST {urlsplit(url).path} HTTP/1.1", f"Host: {urlsplit(url).netloc}", "Content-Type: application/json",
             *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(webhooks: str, provider: str):
    url = f"{webhooks}/{provider}"
    # Five chunks of a quarter of the limit pass it; the closing chunk never comes, so only a reader that stops
    # at the limit can answer.
    raw = head(url, "Transfer-Encoding: chunked") + chunk(b" " * (MAX_BODY // 4)) * 5
    status, answer = exchange(url, raw)
    assert (status, answer["error"]) == (413, f"body: larger than {MAX_BODY} bytes")


def test_a_chunked_body_within_the_limit_is_read_whole(webhooks: str):
    body = orjson.dumps({"signature": mailgun_signature(), "event-data": delivered("accepted")})
    where = urlsplit(webhooks)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    try:
        # A generator body has no length: http.client sends it with Transfer-Encoding: chunked.
        connection.request("POST", f"{where.path}/mailgun", body=(body[n:n + 100] for n in range(0, len(body), 100)),
                           headers={"Content-Type": "application/json"}, encode_chunked=True)
        answer = connection.getresponse()
        assert (answer.status, orjson.loads(answer.read())) == (200, {"published": 0})
    finally:
        connection.close()


def test_a_body_declared_larger_than_the_limit_is_refused_before_it_is_sent(webhooks: str):
    url = f"{webhooks}/mailgun"
    status, answer = exchange(url, head(url, f"Content-Length: {MAX_BODY + 1}"))
    assert (status, answer["error"]) == (413, f"body: larger than {MAX_BODY} bytes")


def test_bytes_past_the_declared_length_are_never_part_of_the_body(webhooks: str):
    url = f"{webhooks}/mailgun"
    body = orjson.dumps({"signature": mailgun_signature(), "event-data": delivered("accepted")})
    # Four times the limit, sent after the declared body: the server takes them for the start of the next request.
    rest = b"POST /" + b"a" * (MAX_BODY * 4)
    status, answer = exchange(url, head(url, f"Content-Length: {len(body)}") + body + rest)
    assert (status, answer) == (200, {"published": 0})
