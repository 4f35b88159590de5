"""Schemathesis fuzzes every operation the running gateway documents in its own /openapi.json: no answer may be
a 5xx, and every answer must have a documented status, content type, headers and body shape.

Bounded for a 2-core CI machine (MAX_EXAMPLES per operation) and reproducible: a fixed seed, derandomized
generation and no example database carried between runs.
"""
from collections.abc import Iterator

import pytest
import requests
import schemathesis

from deploy.stack import LocalStack
from ingest.app import create_app
from schemas.vocabulary import TERMINAL_EVENTS, EventType
from tests.e2e.conftest import events_of, wait_for

MAX_EXAMPLES = 100
SEED = 20_240_611
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance")
CONFIG = {
    "seed": SEED,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "request-timeout": 15,
    "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
}
# A fuzzed mail may be accepted and delivered: once fuzzing is over, every one must be settled, so that later
# tests counting what the pipeline did in a window never see these mails.
SETTLED = {str(e) for e in (*TERMINAL_EVENTS, EventType.SCHEDULED)}


@pytest.fixture(scope="module")
def accepted_mails(stack: LocalStack) -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    api = f"{stack.config.api_url}/api/v1.0"
    for mail_id in ids:
        wait_for(lambda: SETTLED & {e["event"] for e in events_of(api, mail_id)}, timeout=60,
                 what=f"fuzzed mail {mail_id} to be sent, dead-lettered or scheduled")


# Loaded from the gateway's code at collection, when the stack is not up yet (pytest 9 breaks schemathesis'
# fixture-loaded schemas); test_the_fuzzed_schema_is_the_one_served checks it is what the gateway serves.
schema = schemathesis.openapi.from_dict(create_app().openapi(), config=schemathesis.Config.from_dict(CONFIG))


@schema.parametrize()
def test_every_operation_answers_as_documented(case: schemathesis.Case, stack: LocalStack,
                                               accepted_mails: list[str]):
    response = case.call_and_validate(base_url=stack.config.api_url)
    if case.method == "POST" and case.path == "/api/v1.0/mails/" and response.status_code == 202:
        accepted_mails.append(response.json()["id"])


def test_the_fuzzed_schema_is_the_one_served(stack: LocalStack):
    served = requests.get(f"{stack.config.api_url}/openapi.json", timeout=10)
    assert served.status_code == 200 and served.json() == create_app().openapi()


def test_every_served_route_is_documented(stack: LocalStack):
    """Every API route the gateway serves is in the schema; the dashboard's static files are not API."""
    document = requests.get(f"{stack.config.api_url}/openapi.json", timeout=10).json()
    paths = set(document["paths"])
    assert {"/api/v1.0/", "/api/v1.0/mails/", "/api/v1.0/mails/{mail_id}", "/api/v1.0/mails/{mail_id}/events/",
            "/api/v1.0/mails/{mail_id}/events/{event_id}", "/api/v1.0/analytics/lag", "/metrics",
            "/api/v1.0/webhooks/mailgun", "/api/v1.0/webhooks/sendgrid", "/schema-registry/subjects"} <= paths
    assert not any(path.startswith("/dashboard") for path in paths)
    body = document["paths"]["/api/v1.0/mails/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    mail = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert {"html", "cc", "bcc", "reply_to", "headers", "attachments", "tags", "metadata"} <= set(mail["properties"])
    assert set(mail["required"]) == {"sender", "recipients", "subject"}
