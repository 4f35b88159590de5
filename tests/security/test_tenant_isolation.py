"""One tenant must never reach another's data or the fleet: a client-written field naming another tenant's
provider message, and an administrator of one tenant acting as an operator of all."""
import asyncio
import json
import secrets

import pytest
import requests

from deploy.stack import LocalStack
from ingest.keys.admin import store_key
from ingest.keys.api_key import ApiKey, Scope, mint
from ingest.keys.routes import MAX_KEYS_PER_TENANT
from tests.e2e.conftest import post_mail, wait_for, wait_for_event
from tests.e2e.sessions import key_session, new_key, new_tenant


def _sent_message_id(api: str, mail_id: str, session: requests.Session) -> str:
    sent = next(e for e in wait_for_event(api, mail_id, "sent", session=session) if e["event"] == "sent")
    return json.loads(sent["blob"])["message_id"]


def test_a_client_event_naming_another_tenants_message_reads_none_of_its_feedback(api: str, sandbox):
    victim = key_session(new_key(api, tenant=new_tenant(), scopes=["send", "read"])["key"])
    attacker = key_session(new_key(api, tenant=new_tenant(), scopes=["send", "read"])["key"])
    secret_mail = post_mail(api, f"victim {secrets.token_hex(4)}", "bounce@example.com", session=victim,
                            bcc=["hidden@example.com"])
    victims_message = _sent_message_id(api, secret_mail, victim)
    wait_for(lambda: victim.get(f"{api}/analytics/mails/{secret_mail}/trace", timeout=10).json()["feedback"],
             what="the provider's feedback on the victim's trace")

    own_mail = post_mail(api, f"attacker {secrets.token_hex(4)}", session=attacker)
    wait_for(lambda: attacker.get(f"{api}/mails/{own_mail}", timeout=10).status_code == 200,
             what="the attacker's own mail in its history")
    forged = {"event": "note", "blob": json.dumps({"message_id": victims_message})}
    assert attacker.post(f"{api}/mails/{own_mail}/events/", json=forged, timeout=10).status_code == 202

    def traced() -> dict | None:
        trace = attacker.get(f"{api}/analytics/mails/{own_mail}/trace", timeout=10).json()
        return trace if any(e["event"] == "note" for e in trace["events"]) else None

    trace = wait_for(traced, what="the attacker's note on its own trace")
    leaked = [f for f in trace["feedback"] if f["message_id"] == victims_message]
    assert leaked == [], "another tenant's provider feedback leaked into a trace"
    assert {f["recipient"] for f in trace["feedback"]} <= {"bob@example.com"}
    note = next(e for e in trace["events"] if e["event"] == "note")
    assert note["message_id"] in ("", None) and victims_message in note["blob"]


@pytest.fixture
def tenant_admin(api: str) -> tuple[str, requests.Session]:
    tenant = new_tenant()
    return tenant, key_session(new_key(api, tenant=tenant, scopes=["tenant_admin"])["key"])


def test_a_tenant_administrator_manages_its_own_keys_only(api: str, tenant_admin):
    tenant, admin = tenant_admin
    own = new_key(api, session=admin, scopes=["send", "read"])
    assert own["tenant"] == tenant
    assert key_session(own["key"]).get(f"{api}/mails/", timeout=10).status_code == 200
    others = new_key(api, tenant=new_tenant(), scopes=["read"])

    for body in ({"tenant": others["tenant"]}, {"scopes": ["operator"]}, {"scopes": ["send", "operator"]}):
        refused = admin.post(f"{api}/keys/", json=body, timeout=10)
        assert refused.status_code == 403, (body, refused.text)
    assert admin.get(f"{api}/keys/{others['id']}", timeout=10).status_code == 404
    assert admin.delete(f"{api}/keys/{others['id']}", timeout=10).status_code == 404
    assert key_session(others["key"]).get(f"{api}/mails/", timeout=10).status_code == 200, "revoked by another tenant"
    assert admin.get(f"{api}/keys/", params={"tenant": others["tenant"]}, timeout=10).status_code == 403
    listed = admin.get(f"{api}/keys/", timeout=10).json()["keys"]
    assert {k["tenant"] for k in listed} == {tenant} and own["id"] in {k["id"] for k in listed}
    assert admin.delete(f"{api}/keys/{own['id']}", timeout=10).json()["active"] is False


FLEET_ROUTES = (
    ("GET", "/dispatcher/providers/"), ("PUT", "/dispatcher/providers/mailgun"), ("POST", "/dispatcher/providers/"),
    ("DELETE", "/dispatcher/providers/mailgun"), ("GET", "/configurations/"), ("GET", "/analytics/breakers"),
    ("GET", "/analytics/feedback"), ("GET", "/analytics/lag"),
)


def test_no_tenant_key_operates_the_fleet(api: str, tenant_admin, stack: LocalStack):
    _, admin = tenant_admin
    # A key minted before the scopes were split: its `admin` reads back as the tenant's administration alone.
    record, token = mint(new_tenant(), [Scope.SEND, Scope.READ])
    legacy = ApiKey(record.id, record.tenant, frozenset({"admin", "send", "read"}), record.secret_sha256,
                    "before the split", created_at=record.created_at)
    asyncio.run(store_key(stack.config.bootstrap, legacy))
    old_admin = key_session(token)
    wait_for(lambda: old_admin.get(f"{api}/mails/", timeout=10).status_code == 200, what="the legacy key to load")
    redirect = {"settings": {"base_url": "https://collector.example"}}
    for session in (admin, old_admin, key_session(new_key(api, scopes=["send", "read", "tenant_admin"])["key"])):
        for method, path in FLEET_ROUTES:
            answer = session.request(method, f"{api}{path}", json=redirect, timeout=10)
            assert answer.status_code == 403, (method, path, answer.text)
            assert "operator" in answer.json()["error"]
    assert old_admin.post(f"{api}/keys/", json={"tenant": new_tenant()}, timeout=10).status_code == 403


def test_an_operator_reaches_the_fleet_and_every_tenants_keys(api: str):
    operator = key_session(new_key(api, scopes=["operator"])["key"])
    assert operator.get(f"{api}/dispatcher/providers/", timeout=10).status_code == 200
    assert operator.get(f"{api}/analytics/lag", timeout=10).status_code == 200
    other = new_key(api, session=operator, tenant=new_tenant(), scopes=["tenant_admin"])
    assert operator.get(f"{api}/keys/{other['id']}", timeout=10).status_code == 200
    assert operator.get(f"{api}/mails/", timeout=10).status_code == 403, "operating the fleet is not reading mail"


def test_the_retired_admin_scope_is_refused_with_the_new_names(api: str):
    refused = key_session(new_key(api, scopes=["operator"])["key"]).post(
        f"{api}/keys/", json={"scopes": ["admin"]}, timeout=10)
    assert refused.status_code == 422 and "tenant_admin" in refused.json()["error"]


def test_a_tenant_administrator_neither_sees_its_tenants_operators_nor_lifts_its_own_limits(api: str, tenant_admin):
    tenant, admin = tenant_admin
    operator = new_key(api, tenant=tenant, scopes=["operator"])
    assert admin.get(f"{api}/keys/{operator['id']}", timeout=10).status_code == 404
    assert admin.delete(f"{api}/keys/{operator['id']}", timeout=10).status_code == 404
    assert operator["id"] not in {k["id"] for k in admin.get(f"{api}/keys/", timeout=10).json()["keys"]}
    assert key_session(operator["key"]).get(f"{api}/analytics/lag", timeout=10).status_code == 200

    for limits in ({"rate_per_s": 0}, {"rate_per_s": 1_000_000}, {"burst": 1_000_000}):
        refused = admin.post(f"{api}/keys/", json=limits, timeout=10)
        assert refused.status_code == 403 and "an operator may give more" in refused.json()["error"], limits
    assert new_key(api, session=admin, rate_per_s=5, burst=10)["rate_per_s"] == 5


def test_a_tenant_administrator_mints_a_bounded_number_of_keys(api: str, tenant_admin):
    _, admin = tenant_admin
    minted = [new_key(api, session=admin, scopes=["read"]) for _ in range(MAX_KEYS_PER_TENANT - 1)]
    refused = admin.post(f"{api}/keys/", json={"scopes": ["read"]}, timeout=10)
    assert refused.status_code == 403 and "revoke one first" in refused.json()["error"]
    assert admin.delete(f"{api}/keys/{minted[0]['id']}", timeout=10).status_code == 200
    assert admin.post(f"{api}/keys/", json={"scopes": ["read"]}, timeout=10).status_code == 201
