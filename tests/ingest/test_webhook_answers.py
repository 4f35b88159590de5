"""What the webhook endpoints answer when something is missing: a real gateway process, no broker reachable,
only the Mailgun key configured."""
import hashlib
import hmac
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deploy.processes import ManagedProcess, StartupError, free_port, http_ok

ROOT = Path(__file__).resolve().parents[2]
SIGNING_KEY = secrets.token_hex(32)
MAX_BODY = 4096


def gateway(log_dir: Path, **env: str) -> tuple[ManagedProcess, str]:
    """The gateway process and its webhooks URL."""
    port = free_port()
    env = {"MERCURY_INGEST_PORT": str(port), "MERCURY_INGEST_WORKERS": "1",
           "KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}", "MERCURY_KAFKA_DELIVERY_TIMEOUT_MS": "1000",
           "MERCURY_MAX_BODY_BYTES": str(MAX_BODY), **env}
    process = ManagedProcess("ingest-webhooks", [sys.executable, "-m", "ingest"], log_dir, env=env, cwd=ROOT,
                             ready=lambda: http_ok(f"http://127.0.0.1:{port}/api/v1.0/"), ready_timeout=30)
    return process, f"http://127.0.0.1:{port}/api/v1.0/webhooks"


@pytest.fixture(scope="module")
def webhooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = gateway(tmp_path_factory.mktemp("ingest"), MERCURY_MAILGUN_WEBHOOK_SIGNING_KEY=SIGNING_KEY,
                           MERCURY_SENDGRID_WEBHOOK_PUBLIC_KEY="")
    process.start()
    yield url
    process.stop()


def signed(event_data: dict) -> dict:
    stamp, token = str(int(time.time())), secrets.token_hex(25)
    digest = hmac.new(SIGNING_KEY.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": stamp, "token": token, "signature": digest}, "event-data": event_data}


def delivered() -> dict:
    return {"event": "delivered", "id": secrets.token_hex(8), "timestamp": time.time(), "recipient": "a@example.com",
            "message": {"headers": {"message-id": "1.2@mg.example.com"}}}


def test_a_provider_without_a_key_answers_503(webhooks: str):
    answer = requests.post(f"{webhooks}/sendgrid", data=b"[]", timeout=10)
    assert answer.status_code == 503 and answer.json() == {"error": "the SendGrid webhook is not configured"}


def test_a_webhook_the_broker_did_not_take_answers_503_and_its_retry_is_no_replay(webhooks: str):
    webhook = signed(delivered())
    for _attempt in range(2):
        answer = requests.post(f"{webhooks}/mailgun", json=webhook, timeout=20)
        assert answer.status_code == 503 and "retry later" in answer.json()["error"]


def test_an_event_mercury_does_not_track_is_acknowledged_and_its_replay_refused(webhooks: str):
    webhook = signed({**delivered(), "event": "accepted"})
    answer = requests.post(f"{webhooks}/mailgun", json=webhook, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"published": 0}
    replay = requests.post(f"{webhooks}/mailgun", json=webhook, timeout=10)
    assert replay.status_code == 401 and "already used" in replay.json()["error"]


@pytest.mark.parametrize("body, status, reason", [
    (b"{not json", 400, "not JSON"),
    (b"[]", 400, "JSON object"),
    (b'{"event-data": {}}', 401, "signature: missing"),
    (b"x" * (MAX_BODY + 1), 413, "larger than"),
])
def test_a_bad_request_gets_its_reason(webhooks: str, body: bytes, status: int, reason: str):
    answer = requests.post(f"{webhooks}/mailgun", data=body, timeout=10)
    assert answer.status_code == status and reason in answer.json()["error"]


def test_a_signed_but_malformed_event_names_its_field(webhooks: str):
    answer = requests.post(f"{webhooks}/mailgun", json=signed({**delivered(), "recipient": 7}), timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == "event-data.recipient"


def test_an_unusable_sendgrid_key_stops_the_gateway_at_start(tmp_path: Path):
    process, _url = gateway(tmp_path, MERCURY_SENDGRID_WEBHOOK_PUBLIC_KEY="bm90IGEga2V5", MERCURY_INGEST_WORKERS="2")
    with pytest.raises(StartupError, match="exited with"):
        process.start()
    log = process.log_path.read_text()
    assert "WebhookKeyInvalid" in log and "bm90IGEga2V5" not in log
