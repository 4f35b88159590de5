"""The sandbox posts each provider's real, signed webhooks for what it accepted, to a receiver in the test;
the gateway's own verification and normalisation must accept them and find the adapter's message id."""
import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from loop_thread import Run
from sandbox_client import Sandbox, sandbox_argv

from deploy.processes import ManagedProcess, free_port, port_open
from ingest.webhooks.mailgun import MailgunVerifier, mailgun_records
from ingest.webhooks.sendgrid import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    SendGridVerifier,
    sendgrid_records,
)
from providers.config import ADAPTERS
from providers.sandbox.__main__ import parse_args
from schemas.logs import parse_line
from schemas.model import Mail

ROOT = Path(__file__).resolve().parents[2]
RECIPIENTS = ("bob@example.com", "bounce@example.com", "softbounce@example.com", "complain@example.com",
              "open@example.com", "click-7@example.com", "unsubscribe@example.com")
EXPECTED = {
    "bob@example.com": [("delivered", "")],
    "bounce@example.com": [("bounced", "hard")],
    "softbounce@example.com": [("bounced", "soft")],
    "complain@example.com": [("delivered", ""), ("complained", "")],
    "open@example.com": [("delivered", ""), ("opened", "")],
    "click-7@example.com": [("delivered", ""), ("opened", ""), ("clicked", "")],
    "unsubscribe@example.com": [("delivered", ""), ("unsubscribed", "")],
}


class Receiver:
    """A local HTTP server that keeps every POST; answers 503 to the first `fail_first` of them."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.fail_first = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    refuse = receiver.fail_first > 0
                    receiver.fail_first -= refuse
                    if not refuse:
                        receiver.posts.append((self.path, dict(self.headers), body))
                self.send_response(503 if refuse else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait(self, path: str, count: int, timeout: float = 15.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [(headers, body) for p, headers, body in self.posts if p == path]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        pytest.fail(f"{len(found)} of {count} webhooks arrived at {path} within {timeout:.0f}s")


class Keys:
    def __init__(self) -> None:
        private = ec.generate_private_key(ec.SECP256R1())
        self.signing_key = secrets.token_hex(32)
        self.private_pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
        self.public = base64.b64encode(
            private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()


def start_sandbox(log_dir: Path, receiver: Receiver, keys: Keys, delay_ms: int) -> tuple[ManagedProcess, Sandbox]:
    ports = {name: free_port() for name in ADAPTERS}
    control = free_port()
    env = {
        "SANDBOX_WEBHOOK_URL_MAILGUN": f"{receiver.url}/mailgun",
        "SANDBOX_WEBHOOK_URL_SENDGRID": f"{receiver.url}/sendgrid",
        "SANDBOX_MAILGUN_WEBHOOK_SIGNING_KEY": keys.signing_key,
        "SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY": keys.private_pem,
        "SANDBOX_WEBHOOK_DELAY_MS": str(delay_ms),
    }
    process = ManagedProcess("sandbox-webhooks", sandbox_argv(ports, control), log_dir, cwd=ROOT, env=env,
                             ready=lambda: all(port_open("127.0.0.1", p) for p in [*ports.values(), control]),
                             ready_timeout=20)
    return process.start(), Sandbox(ports, control)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def webhook_sandbox(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver, keys: Keys) -> Iterator[Sandbox]:
    process, sandbox = start_sandbox(tmp_path_factory.mktemp("sandbox-webhooks"), receiver, keys, delay_ms=50)
    yield sandbox
    process.stop()


def send(run: Run, sandbox: Sandbox, provider: str, recipients: tuple[str, ...]) -> str:
    """Send through the real adapter; the message id it records for the `sent` event."""
    service = sandbox.service(provider)
    mail = Mail(id=str(uuid.uuid4()), sender="noreply@mercury.example", recipients=recipients, subject="webhooks",
                content="hello", created_at=int(time.time() * 1000))
    try:
        return run(service.send(mail)).message_id
    finally:
        service.close()


def outcomes(records: list[dict], message_id: str) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for record in records:
        if record["message_id"] == message_id:
            found.setdefault(record["recipient"], []).append((record["event"], record["bounce"]))
    return found


def test_mailgun_webhooks_arrive_signed_and_normalise_to_the_sent_message_id(webhook_sandbox, receiver, keys, run):
    message_id = send(run, webhook_sandbox, "mailgun", RECIPIENTS)
    expected = sum(len(events) for events in EXPECTED.values())
    verifier = MailgunVerifier(keys.signing_key)
    records = []
    for _headers, body in receiver.wait("/mailgun", expected):
        document = json.loads(body)
        verifier.verify(document["signature"])
        records += mailgun_records(document["event-data"], 0)
    assert outcomes(records, message_id) == EXPECTED
    [clicked] = [r for r in records if r["event"] == "clicked"]
    assert clicked["url"].startswith("https://") and clicked["reason"] == ""
    assert all(r["reason"] for r in records if r["event"] == "bounced")


def test_sendgrid_webhooks_arrive_signed_and_normalise_to_the_sent_message_id(webhook_sandbox, receiver, keys, run):
    message_id = send(run, webhook_sandbox, "sendgrid", RECIPIENTS)
    [(headers, body)] = receiver.wait("/sendgrid", 1)
    SendGridVerifier(keys.public).verify(body, headers[SENDGRID_SIGNATURE_HEADER], headers[SENDGRID_TIMESTAMP_HEADER])
    assert body.endswith(b"\r\n")
    assert {event["event"] for event in json.loads(body)} >= {"processed", "deferred"}
    records = sendgrid_records(json.loads(body), 0)
    assert outcomes(records, message_id) == EXPECTED


def test_a_refused_webhook_is_retried(webhook_sandbox: Sandbox, receiver: Receiver, run: Run):
    before = len(receiver.wait("/sendgrid", 0))
    with receiver.lock:
        receiver.fail_first = 2
    message_id = send(run, webhook_sandbox, "sendgrid", ("bob@example.com",))
    [(_headers, body)] = receiver.wait("/sendgrid", before + 1)[before:]
    assert outcomes(sendgrid_records(json.loads(body), 0), message_id) == {"bob@example.com": [("delivered", "")]}


def test_sigterm_stops_at_once_and_drops_what_was_not_yet_sent(tmp_path: Path, receiver: Receiver, keys: Keys,
                                                               run: Run):
    process, sandbox = start_sandbox(tmp_path, receiver, keys, delay_ms=60_000)
    send(run, sandbox, "mailgun", ("bob@example.com",))
    started = time.monotonic()
    process.stop()
    assert process.proc.returncode == 0 and time.monotonic() - started < 10
    lines = [parse_line(line) for line in process.log_path.read_text().splitlines()]
    stopped = [line for line in lines if line["event"] == "webhooks.stopped"]
    assert {(line["provider"], line["unsent_messages"]) for line in stopped} == {("mailgun", "1"), ("sendgrid", "0")}


@pytest.mark.parametrize("env, complaint", [
    ({"SANDBOX_WEBHOOK_URL_MAILGUN": "http://127.0.0.1:9/x"}, "needs --mailgun-webhook-signing-key"),
    ({"SANDBOX_WEBHOOK_URL_SENDGRID": "http://127.0.0.1:9/x", "SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY": "bm9wZQ=="},
     "does not load"),
])
def test_a_webhook_url_without_a_usable_secret_stops_the_sandbox_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, env: dict[str, str], complaint: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        parse_args([])
    assert complaint in capsys.readouterr().err
