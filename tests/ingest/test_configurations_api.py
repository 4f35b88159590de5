"""The configurations' endpoints on a bare app against the real broker: effective values with their source,
set, change, back to the environment, and refusals naming the field."""
from collections.abc import Iterator

import pytest
from admin_app import fresh_topic, serving
from starlette.testclient import TestClient

from ingest.control.configurations import PREFIX, ConfigurationsApi, install

ENV = {"MERCURY_RETRY_DELAYS": "1,5,30", "MERCURY_BREAKER_FAILURES": "5", "MERCURY_RATE_LIMITS": "mailgun=50"}


@pytest.fixture
def topic(bootstrap: str) -> str:
    return fresh_topic(bootstrap, "configurations")


@pytest.fixture
def client(bootstrap: str, topic: str) -> Iterator[TestClient]:
    with serving(bootstrap, lambda: ConfigurationsApi(bootstrap, ENV, topic=topic), install) as running:
        yield running


def test_every_configuration_shows_the_environment_value_until_set(client: TestClient) -> None:
    answer = client.get(f"{PREFIX}/")

    assert answer.status_code == 200
    assert [(c["id"], c["source"], c["value"]) for c in answer.json()["configurations"]] == [
        ("retry_ladder", "environment", {"delays_s": [1.0, 5.0, 30.0]}),
        ("breakers", "environment", {"failures": 5, "recovery_s": 10.0}),
        ("provider_rate_limits", "environment", {"mailgun": 50.0}),
    ]


def test_a_value_is_set_changed_and_deleted_back_to_the_environment(client: TestClient, bootstrap: str,
                                                                     topic: str) -> None:
    created = client.post(f"{PREFIX}/", json={"id": "breakers", "value": {"failures": 2, "recovery_s": 3}})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{PREFIX}/breakers"
    assert (created.json()["source"], created.json()["value"]) == ("api", {"failures": 2, "recovery_s": 3.0})
    assert created.json()["environment"] == {"failures": 5, "recovery_s": 10.0}
    assert client.get(f"{PREFIX}/breakers").json() == created.json()

    changed = client.put(f"{PREFIX}/retry_ladder", json={"value": {"delays_s": [2, 4]}})
    assert changed.status_code == 200 and changed.json()["value"] == {"delays_s": [2.0, 4.0]}
    with serving(bootstrap, lambda: ConfigurationsApi(bootstrap, ENV, topic=topic), install) as another:
        assert another.get(f"{PREFIX}/retry_ladder").json()["source"] == "api"

    assert client.delete(f"{PREFIX}/breakers").status_code == 204
    assert client.get(f"{PREFIX}/breakers").json()["source"] == "environment"
    assert client.delete(f"{PREFIX}/breakers").status_code == 404
    assert client.post(f"{PREFIX}/",
                       json={"id": "breakers", "value": {"failures": 9, "recovery_s": 1}}).status_code == 201


@pytest.mark.parametrize("method, path, body, status, field", [
    ("post", "/", {"id": "ladder", "value": {}}, 422, "id"),
    ("post", "/", {"id": "retry_ladder", "value": {"delays_s": [1, 2, 3, 4]}}, 422, "value.delays_s"),
    ("post", "/", {"id": "breakers", "value": {"failures": 0, "recovery_s": 1}}, 422, "value.failures"),
    ("post", "/", {"id": "provider_rate_limits", "value": {"mailgun": -1}}, 422, "value.mailgun"),
    ("post", "/", {"id": "breakers", "value": 5}, 422, "value"),
    ("post", "/", {"id": "breakers", "value": {}, "extra": 1}, 422, "extra"),
    ("post", "/", "breakers", 400, "body"),
    ("put", "/breakers", {"value": {"failures": 2}}, 422, "value.recovery_s"),
    ("put", "/nothing", {"value": {}}, 404, None),
])
def test_refusals_name_the_field(client: TestClient, method: str, path: str, body: object, status: int,
                                 field: str | None) -> None:
    answer = getattr(client, method)(f"{PREFIX}{path}", json=body)

    assert answer.status_code == status, answer.text
    assert answer.json().get("field") == field


def test_a_second_post_is_a_conflict_and_missing_ids_are_404(client: TestClient) -> None:
    body = {"id": "provider_rate_limits", "value": {"sendgrid": 10}}
    assert client.post(f"{PREFIX}/", json=body).status_code == 201
    assert client.post(f"{PREFIX}/", json=body).status_code == 409
    assert client.get(f"{PREFIX}/nothing").status_code == 404
    assert client.delete(f"{PREFIX}/nothing").status_code == 404
