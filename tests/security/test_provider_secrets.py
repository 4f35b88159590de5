"""A provider's secret stays with the host it was given for, remote hosts need https, and what a tenant sees of
a provider's answer is its classification, its status and at most a short excerpt of its own error message."""
import random
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.fernet import Fernet
from requests import Response
from starlette.testclient import TestClient

from dispatcher.delivery import Dispatcher
from dispatcher.jobs import Source
from dispatcher.ratelimit import RateLimits
from dispatcher.sender import BoundedSender
from ingest.control.providers import PREFIX, ProvidersApi, install
from providers import (
    ProviderAdapter,
    ProviderConfigError,
    ProviderError,
    ProviderFailure,
    TransientError,
    load_providers,
)
from providers.config import build_provider
from schemas import codec, topics
from schemas.control.provider_entries import ProviderEntry, check_entry
from schemas.control.provider_settings import InvalidSetting, from_environment
from schemas.model import Mail
from tests.dispatcher.conftest import Fleet
from tests.ingest.admin_app import fresh_topic, serving
from tests.loop_thread import Run

KEY = Fernet.generate_key().decode()
ENV = {"MERCURY_PROVIDERS": "mailgun,smtp", "MAILGUN_BASE_URL": "https://api.mailgun.net",
       "MAILGUN_API_KEY": "env-secret-key", "SMTP_HOST": "relay.example.com", "SMTP_PASSWORD": "env-password",
       "MERCURY_SECRETS_KEY": KEY}
ELSEWHERE = "https://elsewhere.example.net"
# The most a tenant sees of a provider's own error message.
DETAIL_LIMIT = 200


@pytest.fixture
def topic(bootstrap: str) -> str:
    return fresh_topic(bootstrap, "providers")


@pytest.fixture
def client(bootstrap: str, topic: str) -> Iterator[TestClient]:
    with serving(bootstrap, lambda: ProvidersApi(bootstrap, ENV, topic=topic), install) as running:
        yield running


def refused(answer: Response, field: str, secret: str) -> bool:
    body = answer.json()
    return (answer.status_code == 422 and body["field"] == field
            and f"requires giving secrets.{secret} again" in body["error"])


@pytest.mark.parametrize("method, path, body, field, secret", [
    ("put", "/mailgun", {"settings": {"base_url": ELSEWHERE}}, "settings.base_url", "api_key"),
    ("put", "/mailgun", {"settings": {"base_url": "https://api.mailgun.net:8443"}}, "settings.base_url", "api_key"),
    ("post", "/", {"id": "mailgun-2", "type": "mailgun", "settings": {"base_url": ELSEWHERE}},
     "settings.base_url", "api_key"),
    ("put", "/smtp", {"settings": {"host": "relay.elsewhere.example"}}, "settings.host", "password"),
    ("put", "/smtp", {"settings": {"port": "2525"}}, "settings.port", "password"),
    ("post", "/", {"id": "smtp-2", "type": "smtp", "settings": {"host": "relay.elsewhere.example"}},
     "settings.host", "password"),
])
def test_an_environment_secret_is_not_sent_to_another_host(client: TestClient, method: str, path: str, body: dict,
                                                            field: str, secret: str) -> None:
    answer = getattr(client, method)(f"{PREFIX}{path}", json=body)

    assert refused(answer, field, secret), answer.text
    assert "env-secret-key" not in answer.text and "env-password" not in answer.text


def test_a_new_host_is_taken_with_its_secret_given_again(client: TestClient) -> None:
    moved = client.put(f"{PREFIX}/mailgun", json={"settings": {"base_url": ELSEWHERE}, "secrets": {"api_key": "k2"}})
    assert moved.status_code == 200, moved.text
    created = client.post(f"{PREFIX}/", json={"id": "smtp-2", "type": "smtp", "settings": {"host": "relay2.example"},
                                              "secrets": {"password": "p2"}})
    assert created.status_code == 201, created.text
    same_host = client.put(f"{PREFIX}/mailgun", json={"settings": {"base_url": f"{ELSEWHERE}/v3-proxy"}})
    assert same_host.status_code == 200, "a path on the same host keeps the secret"


def test_a_stored_secret_is_bound_to_the_host_it_was_stored_for(client: TestClient) -> None:
    created = client.post(f"{PREFIX}/", json={"id": "mailgun-eu", "type": "mailgun",
                                              "settings": {"base_url": "https://api.eu.mailgun.net"},
                                              "secrets": {"api_key": "eu-key"}})
    assert created.status_code == 201, created.text

    moved = client.put(f"{PREFIX}/mailgun-eu", json={"settings": {"base_url": ELSEWHERE}})
    back_to_environment = client.put(f"{PREFIX}/mailgun-eu", json={"settings": {"base_url": None}})

    assert refused(moved, "settings.base_url", "api_key"), moved.text
    assert refused(back_to_environment, "settings.base_url", "api_key"), back_to_environment.text
    assert client.get(f"{PREFIX}/mailgun-eu").json()["settings"]["base_url"] == "https://api.eu.mailgun.net"


def test_a_stored_secret_keeps_its_host_when_the_environment_changes(client: TestClient, bootstrap: str,
                                                                      topic: str) -> None:
    stored = client.put(f"{PREFIX}/mailgun", json={"secrets": {"api_key": "api-key"}})
    assert stored.status_code == 200, stored.text

    moved_env = {**ENV, "MAILGUN_BASE_URL": ELSEWHERE}
    with serving(bootstrap, lambda: ProvidersApi(bootstrap, moved_env, topic=topic), install) as restarted:
        shown = restarted.get(f"{PREFIX}/mailgun").json()

    assert (shown["settings"]["base_url"], shown["sources"]["base_url"]) == ("https://api.mailgun.net", "api")


def test_a_dispatcher_refuses_a_record_that_sends_the_environment_secret_elsewhere() -> None:
    entry = ProviderEntry("mailgun-2", "mailgun", settings={"base_url": ELSEWHERE}, updated_at=1)

    with pytest.raises(InvalidSetting) as caught:
        check_entry(entry, ENV, {})

    assert caught.value.field == "settings.base_url"
    assert check_entry(entry, {**ENV, "MAILGUN_BASE_URL": f"{ELSEWHERE}:443/"}, {})["api_key"] == "env-secret-key"


@pytest.mark.parametrize("url", ["http://mail.example.com", "http://10.0.0.7:8025"])
def test_plain_http_to_a_remote_host_is_refused(client: TestClient, url: str) -> None:
    answer = client.post(f"{PREFIX}/", json={"id": "mailgun-2", "type": "mailgun", "settings": {"base_url": url},
                                             "secrets": {"api_key": "k"}})

    assert (answer.status_code, answer.json()["field"]) == (422, "settings.base_url"), answer.text
    assert "https" in answer.json()["error"]
    with pytest.raises(ProviderConfigError, match="MAILGUN_BASE_URL"):
        load_providers({"MERCURY_PROVIDERS": "mailgun", "MAILGUN_BASE_URL": url})


# Each reads as api.mailgun.net (or loopback) to one URL parser and as another host to the HTTP client.
@pytest.mark.parametrize("url", ["https://attacker.example\\@api.mailgun.net", "https://attacker.example@api.mailgun.net",
                                 "http://127.0.0.1@mail.example.com", "https://api.mailgun.net%2f@attacker.example",
                                 "https://attacker.example?@api.mailgun.net", "https://attacker.example#@api.mailgun.net"])
def test_a_base_url_that_parsers_read_differently_is_refused(client: TestClient, url: str) -> None:
    answer = client.put(f"{PREFIX}/mailgun", json={"settings": {"base_url": url}})

    assert (answer.status_code, answer.json()["field"]) == (422, "settings.base_url"), answer.text
    assert "no user info, backslash" in answer.json()["error"] and "env-secret-key" not in answer.text
    with pytest.raises(InvalidSetting):
        check_entry(ProviderEntry("mailgun", "mailgun", settings={"base_url": url}, updated_at=1), ENV, {})


@pytest.mark.parametrize("url", ["http://127.0.0.1:8025", "http://localhost:8025", "http://[::1]:8025"])
def test_plain_http_to_a_loopback_host_is_taken(url: str) -> None:
    [mailgun] = load_providers({"MERCURY_PROVIDERS": "mailgun", "MAILGUN_BASE_URL": url})
    assert mailgun.base_url == url


# -- what a tenant sees of a provider's answer ---------------------------------------------------------------

PAGE = ("<html><head><title>502</title></head><body>internal-host-10.1.2.3 session=abcdef\x1b[2J"
        + "x" * 5000 + "</body></html>")


class Answers(BaseHTTPRequestHandler):
    """Answers every POST with the status, content type, body and headers the test set on the server."""

    def do_POST(self) -> None:
        status, content_type, body, headers = self.server.answer  # type: ignore[attr-defined]
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def answered_by(server: ThreadingHTTPServer, provider_type: str, status: int, content_type: str, body: str,
                headers: dict[str, str] | None = None) -> ProviderAdapter:
    """An adapter of the type whose provider is `server`, answering every send as given."""
    server.answer = (status, content_type, body.encode(), headers or {})  # type: ignore[attr-defined]
    values = from_environment(provider_type, {f"{provider_type.upper()}_BASE_URL":
                                              f"http://127.0.0.1:{server.server_address[1]}"})
    return build_provider(provider_type, provider_type, values)


def failure(run: Run, server: ThreadingHTTPServer, provider_type: str, status: int, content_type: str, body: str,
            headers: dict[str, str] | None = None) -> ProviderError:
    service = answered_by(server, provider_type, status, content_type, body, headers)
    mail = Mail(id="m-1", sender="a@example.com", recipients=("b@example.com",), subject="s", content="c",
                created_at=1)
    try:
        with pytest.raises(ProviderError) as caught:
            run(service.send(mail))
    finally:
        service.close()
    return caught.value


def shown(err: ProviderError) -> str:
    """Everything the dispatcher copies from an error into tenant-visible events and dead letters."""
    return " ".join((err.detail, str(err), *map(str, err.args)))


@pytest.mark.parametrize("provider_type", ["mailgun", "sendgrid", "postmark"])
def test_an_arbitrary_answer_shows_only_its_class_and_status(answering: ThreadingHTTPServer, provider_type: str,
                                                             run: Run) -> None:
    err = failure(run, answering, provider_type, 502, "text/html", PAGE)

    assert isinstance(err, TransientError) and err.status == 502
    assert "internal-host" not in shown(err) and "<html" not in shown(err)
    assert len(err.detail) <= DETAIL_LIMIT


@pytest.mark.parametrize("provider_type", ["mailgun", "sendgrid", "postmark"])
def test_a_redirect_answer_is_a_provider_failure_without_its_body(answering: ThreadingHTTPServer,
                                                                  provider_type: str, run: Run) -> None:
    err = failure(run, answering, provider_type, 302, "text/html", PAGE, {"Location": "https://elsewhere.example/"})

    assert isinstance(err, ProviderFailure) and err.status == 302
    assert "internal-host" not in shown(err) and "elsewhere" not in shown(err)


@pytest.mark.parametrize("provider_type, body", [
    ("mailgun", '{"message": "domain suspended\\u001b[31m\\r\\nX-Injected: 1 %s"}'),
    ("sendgrid", '{"errors": [{"message": "domain suspended\\u001b[31m\\r\\nX-Injected: 1 %s"}]}'),
    ("postmark", '{"ErrorCode": 405, "Message": "domain suspended\\u001b[31m\\r\\nX-Injected: 1 %s"}'),
])
def test_a_providers_own_error_message_is_shown_bounded_and_on_one_line(answering: ThreadingHTTPServer,
                                                                         provider_type: str, body: str,
                                                                         run: Run) -> None:
    err = failure(run, answering, provider_type, 403 if provider_type != "postmark" else 422, "application/json",
                  body % ("y" * 5000))

    assert isinstance(err, ProviderFailure)
    assert err.detail.startswith("domain suspended")
    assert len(err.detail) <= DETAIL_LIMIT and len(str(err)) <= DETAIL_LIMIT + 40
    assert not any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 for c in shown(err))


def test_no_record_the_dispatcher_writes_carries_the_answer(answering: ThreadingHTTPServer, bootstrap: str) -> None:
    fleet = Fleet(bootstrap)
    try:
        service = answered_by(answering, "mailgun", 400, "text/html", PAGE)
        health = fleet.health([service.name], failures=100)
        dispatcher = Dispatcher([service], health, fleet.ledger(health.instance), RateLimits({}, health.fleet_size),
                                BoundedSender(1), (1.0,), True, "test-worker", random.Random(7))
        mail_id = uuid.uuid4().hex
        request = codec.encode("mercury.MailRequest", {
            "id": mail_id, "sender": "a@example.com", "recipients": ["b@example.com"], "subject": "s",
            "content": "c", "created_at": int(time.time() * 1000), "origin": "http"})
        outputs = fleet.run(dispatcher.handle(request, None, Source(topics.REQUESTS, 0, 1, 0)))
        service.close()
    finally:
        fleet.close()

    events = [codec.decode(o.value)[1] for o in outputs if o.topic == topics.EVENTS]
    [failed] = [e for e in events if e["event"] == "attempt_failed"]
    assert (failed["outcome"], '"status":400' in failed["blob"]) == ("permanent", True)
    assert [o.topic for o in outputs].count(topics.DEAD) == 1
    for output in outputs:
        assert b"internal-host" not in output.value and b"<html" not in output.value, output.topic
