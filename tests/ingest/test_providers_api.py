"""The provider registry's endpoints on a bare app against the real broker: CRUD, refusals, write-only secrets."""
from collections.abc import Iterator

import pytest
from admin_app import fresh_topic, serving
from cryptography.fernet import Fernet
from starlette.testclient import TestClient

from ingest.control.providers import PREFIX, ProvidersApi, install
from schemas.control.provider_entries import ProviderEntry
from schemas.control.secrets import SecretBox

KEY = Fernet.generate_key().decode()
ENV = {"MERCURY_PROVIDERS": "mailgun,sendgrid", "MAILGUN_API_KEY": "env-secret-key", "MERCURY_SECRETS_KEY": KEY}
SECRET = "key-never-shown-0123"


@pytest.fixture
def topic(bootstrap: str) -> str:
    return fresh_topic(bootstrap, "providers")


@pytest.fixture
def client(bootstrap: str, topic: str) -> Iterator[TestClient]:
    with serving(bootstrap, lambda: ProvidersApi(bootstrap, ENV, topic=topic), install) as running:
        yield running


def test_the_environment_providers_are_listed_with_their_sources_and_no_secret_values(client: TestClient) -> None:
    answer = client.get(f"{PREFIX}/")

    assert answer.status_code == 200
    providers = {p["id"]: p for p in answer.json()["providers"]}
    assert list(providers) == ["mailgun", "sendgrid"]
    mailgun = providers["mailgun"]
    assert (mailgun["source"], mailgun["enabled"], mailgun["secrets"]) == ("environment", True, ["api_key"])
    assert mailgun["sources"]["api_key"] == "environment" and mailgun["sources"]["domain"] == "default"
    assert "env-secret-key" not in answer.text and "sandbox-key" not in answer.text


def test_a_provider_is_added_changed_disabled_and_removed(client: TestClient, bootstrap: str, topic: str) -> None:
    created = client.post(f"{PREFIX}/", json={
        "id": "mailgun-eu", "type": "mailgun", "settings": {"base_url": "https://api.eu.mailgun.net",
                                                            "read_timeout": 4}, "secrets": {"api_key": SECRET}})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{PREFIX}/mailgun-eu"
    body = created.json()
    assert (body["source"], body["settings"]["read_timeout"], body["sources"]["api_key"]) == ("api", "4", "api")
    assert client.put(f"{PREFIX}/mailgun-eu", json={"settings": {"base_url": "https://api.mailgun.net"}}).status_code \
        == 422, "the stored key was given for the EU host"
    assert client.get(f"{PREFIX}/mailgun-eu").json() == body

    changed = client.put(f"{PREFIX}/mailgun-eu", json={"enabled": False, "settings": {"read_timeout": None}})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["enabled"], changed.json()["settings"]["read_timeout"]) == (False, "10")
    assert changed.json()["secrets"] == ["api_key"], "a change that does not name a secret keeps it"

    assert client.delete(f"{PREFIX}/mailgun-eu").status_code == 204
    assert client.get(f"{PREFIX}/mailgun-eu").status_code == 404
    assert "mailgun-eu" not in [p["id"] for p in client.get(f"{PREFIX}/").json()["providers"]]
    assert client.post(f"{PREFIX}/", json={"id": "mailgun-eu", "type": "sendgrid"}).status_code == 201

    for answer in (created, changed):
        assert SECRET not in answer.text


def test_the_secret_is_on_the_topic_only_encrypted(client: TestClient, bootstrap: str, topic: str) -> None:
    assert client.post(f"{PREFIX}/", json={"id": "postmark-1", "type": "postmark",
                                           "secrets": {"server_token": SECRET}}).status_code == 201
    with serving(bootstrap, lambda: ProvidersApi(bootstrap, ENV, topic=topic), install) as reader:
        assert reader.get(f"{PREFIX}/postmark-1").json()["secrets"] == ["server_token"]
    entries = _read_topic(bootstrap, topic)
    assert all(SECRET.encode() not in value for value in entries)
    [entry] = [ProviderEntry.decode(v) for v in entries if v]
    assert SecretBox(KEY).open(entry.secrets) == {"server_token": SECRET}


def test_removing_an_environment_provider_is_for_good(client: TestClient, bootstrap: str, topic: str) -> None:
    assert client.delete(f"{PREFIX}/sendgrid").status_code == 204
    with serving(bootstrap, lambda: ProvidersApi(bootstrap, ENV, topic=topic), install) as restarted:
        assert restarted.get(f"{PREFIX}/sendgrid").status_code == 404
        assert [p["id"] for p in restarted.get(f"{PREFIX}/").json()["providers"]] == ["mailgun"]
        assert restarted.post(f"{PREFIX}/", json={"id": "sendgrid", "type": "sendgrid"}).status_code == 201


@pytest.mark.parametrize("method, path, body, status, field", [
    ("post", "/", {"id": "mailgun", "type": "mailgun"}, 409, "id"),
    ("post", "/", {"id": "Bad Id", "type": "mailgun"}, 422, "id"),
    ("post", "/", {"id": "x", "type": "postal"}, 422, "type"),
    ("post", "/", {"id": "x", "type": "mailgun", "colour": "blue"}, 422, "colour"),
    ("post", "/", {"id": "x", "type": "mailgun", "settings": {"api_key": SECRET}}, 422, "settings.api_key"),
    ("post", "/", {"id": "x", "type": "smtp", "settings": {"port": "many"}}, 422, "settings.port"),
    ("post", "/", {"id": "x", "type": "smtp", "enabled": "yes"}, 422, "enabled"),
    ("post", "/", [1, 2], 400, "body"),
    ("put", "/nobody", {"enabled": False}, 404, None),
    ("put", "/mailgun", {"settings": {"base_url": "mailgun"}}, 422, "settings.base_url"),
    ("put", "/mailgun", {"settings": {"base_url": "http://api.mailgun.net"}, "secrets": {"api_key": SECRET}}, 422,
     "settings.base_url"),
    ("put", "/mailgun", {"settings": {"base_url": "https://api.mailgun.net"}}, 422, "settings.base_url"),
    ("post", "/", {"id": "x", "type": "sendgrid", "settings": {"base_url": "https://api.sendgrid.com"}}, 422,
     "settings.base_url"),
    ("put", "/mailgun", {"id": "other"}, 422, "id"),
])
def test_refusals_name_the_field(client: TestClient, method: str, path: str, body: object, status: int,
                                 field: str | None) -> None:
    answer = getattr(client, method)(f"{PREFIX}{path}", json=body)

    assert answer.status_code == status, answer.text
    assert answer.json().get("field") == field
    assert SECRET not in answer.text


def test_missing_providers_are_404(client: TestClient) -> None:
    assert client.get(f"{PREFIX}/nobody").status_code == 404
    assert client.delete(f"{PREFIX}/nobody").status_code == 404


def test_a_large_body_is_413(client: TestClient) -> None:
    answer = client.post(f"{PREFIX}/", json={"id": "x", "type": "mailgun", "settings": {"domain": "d" * 70_000}})
    assert answer.status_code == 413


def test_without_a_key_secrets_are_refused_and_the_rest_still_works(bootstrap: str, topic: str) -> None:
    env = {name: value for name, value in ENV.items() if name != "MERCURY_SECRETS_KEY"}
    with serving(bootstrap, lambda: ProvidersApi(bootstrap, env, topic=topic), install) as client:
        refused = client.post(f"{PREFIX}/", json={"id": "sg-2", "type": "sendgrid", "secrets": {"api_key": SECRET}})
        assert (refused.status_code, refused.json()["field"]) == (503, "secrets")
        assert "MERCURY_SECRETS_KEY" in refused.json()["error"] and SECRET not in refused.text
        assert client.get(f"{PREFIX}/sg-2").status_code == 404
        assert client.put(f"{PREFIX}/mailgun", json={"enabled": False}).status_code == 200


def _read_topic(bootstrap: str, topic: str) -> list[bytes]:
    """Every record value on the topic, read to its end (markers included, as empty values)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values = []
    while (message := consumer.poll(10)) is not None and message.error() is None:
        values.append(message.value() or b"")
    consumer.close()
    return values
