"""Schemathesis fuzzes every operation the running gateway documents in its own /openapi.json: no answer may be
a 5xx, and every answer must have a documented status, content type, headers and body shape. The entry points
anyone may call without a key (the provider webhooks, the schema registry) also get hostile input no schema
describes: huge and chunked bodies, non-ASCII digits, wrong content types, bytes that are not UTF-8.

Bounded for a 2-core CI machine (MAX_EXAMPLES per operation) and reproducible: a fixed seed, derandomized
generation and no example database carried between runs.
"""
from collections.abc import Iterator

import orjson
import pytest
import requests
import schemathesis
from local_stack import STACK_ENV

from deploy.stack import LocalStack, StackConfig
from ingest.app import create_app

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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: with the admin key, the fuzzer registers providers, changes configurations and
    sends mails, none of which another test may meet."""
    config = StackConfig.on_free_ports(tmp_path_factory.mktemp("fuzzed-stack"), extra_env=STACK_ENV)
    running = LocalStack(config).start()
    yield running
    running.stop()


# Loaded from the gateway's code at collection, when the stack is not up yet (pytest 9 breaks schemathesis'
# fixture-loaded schemas); test_the_fuzzed_schema_is_the_one_served checks it is what the gateway serves.
schema = schemathesis.openapi.from_dict(create_app().openapi(), config=schemathesis.Config.from_dict(CONFIG))


@schema.parametrize()
def test_every_operation_answers_as_documented(case: schemathesis.Case, stack: LocalStack):
    case.call_and_validate(base_url=stack.config.api_url, headers={"Authorization": f"Bearer {stack.admin_key}"})


def test_the_fuzzed_schema_is_the_one_served(stack: LocalStack):
    served = requests.get(f"{stack.config.api_url}/openapi.json", timeout=10)
    assert served.status_code == 200 and served.json() == create_app().openapi()


def test_every_served_route_is_documented(stack: LocalStack):
    """Every API route the gateway serves is in the schema; the dashboard's static files are not API."""
    document = requests.get(f"{stack.config.api_url}/openapi.json", timeout=10).json()
    paths = set(document["paths"])
    assert {"/api/v1.0/", "/api/v1.0/mails/", "/api/v1.0/mails/batch", "/api/v1.0/mails/{mail_id}",
            "/api/v1.0/mails/{mail_id}/events/", "/api/v1.0/mails/{mail_id}/events/{event_id}",
            "/api/v1.0/analytics/lag", "/metrics", "/api/v1.0/webhooks/mailgun", "/api/v1.0/webhooks/sendgrid",
            "/schema-registry/subjects", "/api/v1.0/keys/", "/api/v1.0/keys/{key_id}",
            "/api/v1.0/dispatcher/providers/", "/api/v1.0/dispatcher/providers/{provider_id}",
            "/api/v1.0/configurations/", "/api/v1.0/configurations/{config_id}"} <= paths
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "mk_<id>_<secret>",
        "description": document["components"]["securitySchemes"]["ApiKey"]["description"]}
    for path in ("/api/v1.0/mails/", "/api/v1.0/mails/batch"):
        sending = document["paths"][path]["post"]
        assert sending["security"] == [{"ApiKey": []}] and {"401", "403", "429"} <= set(sending["responses"])
    assert "security" not in document["paths"]["/api/v1.0/"]["get"]
    assert not any(path.startswith("/dashboard") for path in paths)
    body = document["paths"]["/api/v1.0/mails/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    mail = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert {"html", "cc", "bcc", "reply_to", "headers", "attachments", "tags", "metadata"} <= set(mail["properties"])
    assert set(mail["required"]) == {"sender", "recipients", "subject"}


NESTED = b'{"a":' * 2000 + b"1" + b"}" * 2000
HOSTILE_SCHEMAS = ('{"type": "record"}', '{"type": "enum", "name": "e", "symbols": [1]}',
                   '{"type": "record", "name": "r", "fields": "a"}', '{"type": ["int", "int"]}',
                   '{"type": "array", "items": ' * 900 + '"int"' + "}" * 900, "\u00b2", "")
# (path, body, extra headers): what an unauthenticated caller can throw at the open entry points.
HOSTILE = [
    *((path, body, {"Content-Type": content_type})
      for path in ("/api/v1.0/webhooks/mailgun", "/api/v1.0/webhooks/sendgrid",
                   "/schema-registry/subjects/mail.requests-value/versions")
      for body, content_type in ((b"", "application/json"), (b"null", "application/json"), (NESTED, "application/json"),
                                 (b"\xff\xfe\x00garbage", "application/json"), (b"<xml/>", "application/xml"),
                                 (b"a=1&b=2", "application/x-www-form-urlencoded"),
                                 (b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--",
                                  "multipart/form-data; boundary=x"),
                                 (b"{}" + b" " * 2_000_000, "application/json"))),
    *(("/api/v1.0/webhooks/mailgun", orjson.dumps({"signature": {"timestamp": stamp, "token": token, "signature": sig},
                                                   "event-data": {"event": "delivered"}}), {})
      for stamp, token, sig in (("\u00b2", "t", "0" * 64), ("9" * 5000, "t", "0" * 64), ("\u0661\u0662", "t", "0" * 64),
                                (None, "t", "0" * 64), ("1", ["t"], "0" * 64), ("1", "t", "\u00e9" * 64),
                                ("1", "t" * 100_000, "0" * 64))),
    *(("/api/v1.0/webhooks/sendgrid", b"[]", {"X-Twilio-Email-Event-Webhook-Timestamp": stamp,
                                             "X-Twilio-Email-Event-Webhook-Signature": sig})
      for stamp, sig in (("\u00b2", "MEUCIQ=="), ("9" * 5000, "MEUCIQ=="), ("1", "\u00e9\u00e9=="), ("1", "!!!!"),
                         ("1", "A" * 100_000))),
    *(("/schema-registry/subjects/mail.requests-value/versions", orjson.dumps({"schema": schema}), {})
      for schema in HOSTILE_SCHEMAS),
    ("/schema-registry/subjects/mail.requests-value/versions", orjson.dumps({"schema": 7}), {}),
]


@pytest.mark.parametrize("path, body, headers", HOSTILE)
def test_the_open_entry_points_answer_hostile_input_with_a_reason(stack: LocalStack, path, body, headers):
    answer = requests.post(f"{stack.config.api_url}{path}", data=body, timeout=30,
                           headers={k: v.encode() if isinstance(v, str) else v for k, v in headers.items()})
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    reason = answer.json()
    assert reason.get("error") or reason.get("message"), reason


@pytest.mark.parametrize("path", ["/api/v1.0/webhooks/mailgun", "/api/v1.0/webhooks/sendgrid",
                                  "/schema-registry/subjects/mail.requests-value/versions"])
def test_the_open_entry_points_cut_a_huge_chunked_body(stack: LocalStack, path):
    chunks = (b" " * 65_536 for _ in range(40))
    answer = requests.post(f"{stack.config.api_url}{path}", data=chunks, timeout=30,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "larger than" in answer.text
