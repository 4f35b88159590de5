"""The sandbox itself: its control endpoints, the providers' wire shapes, and a clean stop."""
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from loop_thread import Run
from sandbox_client import HOST, Sandbox, sandbox_process

from deploy.processes import free_port, port_open
from providers import SendResult
from providers.config import ADAPTERS
from schemas.logs import parse_line
from schemas.model import Mail


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_fault_settings_round_trip(sandbox: Sandbox, provider: str) -> None:
    url = f"{sandbox.control}/{provider}/faults"
    settings = {"error_rate": 0.25, "status": 502, "latency_ms": 5, "reject_recipients": ["x"], "retry_after": 3}

    assert requests.put(url, json=settings, timeout=5).status_code == 200
    shown = requests.get(url, timeout=5).json()
    assert {key: shown[key] for key in settings} == {**settings, "reject_recipients": ["x"]}
    assert shown["down"] is False and shown["timeout"] is False

    assert requests.delete(url, timeout=5).status_code == 200
    assert requests.get(url, timeout=5).json()["error_rate"] == 0.0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"error_rate": 2}',
        b'{"status": 200}',
        b'{"timeout": "yes"}',
        b'{"reject_recipients": "bounce"}',
        b'{"retry_after": -1}',
        b'{"latency": 10}',
    ],
)
def test_invalid_fault_settings_are_refused(sandbox: Sandbox, body: bytes) -> None:
    response = requests.put(f"{sandbox.control}/mailgun/faults", data=body, timeout=5)

    assert response.status_code == 400
    assert response.json()["error"]
    assert requests.get(f"{sandbox.control}/mailgun/faults", timeout=5).json()["error_rate"] == 0.0


def test_health_reports_every_provider(sandbox: Sandbox) -> None:
    health = requests.get(f"{sandbox.control}/health", timeout=5).json()

    assert health["status"] == "ok"
    assert {name: status["port"] for name, status in health["providers"].items()} == sandbox.ports
    assert all(status["up"] for status in health["providers"].values())


def test_provider_port_serves_its_own_faults_and_messages(sandbox: Sandbox, provider: str) -> None:
    own = f"{sandbox.url(provider)}/sandbox"

    requests.put(f"{own}/faults", json={"error_rate": 1.0, "status": 500}, timeout=5).raise_for_status()
    assert requests.get(f"{sandbox.control}/{provider}/faults", timeout=5).json()["status"] == 500
    assert requests.get(f"{own}/messages", timeout=5).json() == []

    # "down" closes the very port the request came in on, so it takes effect just after the answer.
    requests.put(f"{own}/faults", json={"down": True}, timeout=5).raise_for_status()
    assert wait_for(lambda: not port_open(HOST, sandbox.ports[provider]))

    requests.delete(f"{sandbox.control}/{provider}/faults", timeout=5).raise_for_status()
    assert port_open(HOST, sandbox.ports[provider])


def test_going_down_answers_held_requests_first(
    sandbox: Sandbox, provider: str, new_mail: Callable[..., Mail], run: Run
) -> None:
    sandbox.set_faults(provider, timeout=True)
    service = sandbox.service(provider, read_timeout=10)
    results: list[SendResult] = []
    held = threading.Thread(target=lambda: results.append(run(service.send(new_mail()))))
    held.start()
    assert wait_for(lambda: len(sandbox.messages(provider)) == 1)

    started = time.monotonic()
    sandbox.set_faults(provider, down=True)

    assert time.monotonic() - started < 1
    assert not port_open(HOST, sandbox.ports[provider])
    held.join(timeout=5)
    assert len(results) == 1 and results[0].message_id == sandbox.messages(provider)[0]["id"]


def test_mailgun_wire_shape(sandbox: Sandbox) -> None:
    url = f"{sandbox.url('mailgun')}/v3/mg.example.com/messages"
    auth = ("api", "sandbox-key")
    # An urlencoded form with a comma-joined `to` is as valid as repeated multipart fields.
    form = {"from": "a@example.com", "to": "Ada <ada@example.com>, bob@example.org", "subject": "s", "text": "t"}

    accepted = requests.post(url, data=form, auth=auth, timeout=5)
    missing = requests.post(url, data={**form, "subject": ""}, auth=auth, timeout=5)
    forbidden = requests.post(url, data=form, auth=("api", "wrong"), timeout=5)

    assert accepted.status_code == 200
    assert accepted.json()["message"] == "Queued. Thank you."
    assert accepted.json()["id"].startswith("<") and accepted.json()["id"].endswith("@mg.example.com>")
    [received] = sandbox.messages("mailgun")
    assert received["recipients"] == ["ada@example.com", "bob@example.org"]
    assert (missing.status_code, missing.json()) == (400, {"message": "subject parameter is missing"})
    assert (forbidden.status_code, forbidden.text) == (401, "Forbidden")


def test_sendgrid_wire_shape(sandbox: Sandbox) -> None:
    url = f"{sandbox.url('sendgrid')}/v3/mail/send"
    headers = {"Authorization": "Bearer sandbox-key"}
    payload = {
        "personalizations": [{"to": [{"email": "ada@example.com"}]}, {"to": [{"email": "bob@example.org"}]}],
        "from": {"email": "a@example.com"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "t"}],
    }

    accepted = requests.post(url, json=payload, headers=headers, timeout=5)
    invalid = requests.post(url, json={**payload, "content": []}, headers=headers, timeout=5)
    forbidden = requests.post(url, json=payload, headers={"Authorization": "Bearer wrong"}, timeout=5)

    assert (accepted.status_code, accepted.content) == (202, b"")
    [received] = sandbox.messages("sendgrid")
    assert received["id"] == accepted.headers["X-Message-Id"]
    assert received["recipients"] == ["ada@example.com", "bob@example.org"]
    assert invalid.status_code == 400
    assert [error["field"] for error in invalid.json()["errors"]] == ["content"]
    assert forbidden.status_code == 401 and forbidden.json()["errors"][0]["message"]


def test_sigterm_stops_every_server_cleanly(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ADAPTERS}
    control_port = free_port()
    process = sandbox_process(tmp_path, ports, control_port).start()
    requests.put(f"http://{HOST}:{control_port}/sandbox/mailgun/faults", json={"down": True}, timeout=5)

    process.signal(signal.SIGTERM)
    process.proc.wait(timeout=10)

    assert process.proc.returncode == 0
    assert not any(port_open(HOST, port) for port in [*ports.values(), control_port])
    events = [parse_line(line)["event"] for line in process.log_path.read_text().splitlines()]
    assert events[0] == "sandbox.started" and events[-1] == "sandbox.stopped"
    assert "faults.changed" in events and "provider.down" in events
