"""API keys on the running gateway: 401 without one, 403 without the scope, tenants apart, revocation within a
moment on every gateway process, per-key rates with 429, and the `mercury keys` CLI."""
import subprocess
import uuid

import orjson
import requests

from tests.e2e.conftest import gateway, post_mail, unique_subject, wait_for, wait_for_event
from tests.e2e.sessions import key_session, new_key, new_tenant
from tests.e2e.test_cli import MERCURY, mercury

MAIL = {"sender": "alice@example.com", "recipients": "bob@example.com", "subject": "keys", "content": "hi"}


def test_every_route_with_data_needs_a_valid_key(stack, api):
    anonymous = requests.Session()
    for method, path in (("GET", "/mails/"), ("POST", "/mails/"), ("GET", "/mails/x"), ("GET", "/mails/x/events/"),
                         ("POST", "/mails/x/events/"), ("GET", "/analytics/providers"), ("GET", "/analytics/lag"),
                         ("GET", "/analytics/mails/x/trace"), ("GET", "/keys/"), ("DELETE", "/keys/x")):
        answer = anonymous.request(method, f"{api}{path}", json=MAIL, timeout=10)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "API key is required" in answer.json()["error"]
    forged = key_session("mk_0123456789abcdef_" + "A" * 43)
    assert forged.get(f"{api}/mails/", timeout=10).status_code == 401
    for public in (f"{api}/", f"{stack.config.api_url}/openapi.json",
                   f"{stack.config.api_url}/schema-registry/subjects",
                   f"{stack.config.api_url}/dashboard", f"{stack.config.api_url}/metrics"):
        assert anonymous.get(public, timeout=10).status_code == 200, public


def test_a_key_does_only_what_its_scopes_allow(api):
    sender = key_session(new_key(api, scopes=["send"])["key"])
    reader = key_session(new_key(api, scopes=["read"])["key"])
    assert sender.post(f"{api}/mails/", json=MAIL, timeout=10).status_code == 202
    for denied in (sender.get(f"{api}/mails/", timeout=10), sender.get(f"{api}/analytics/providers", timeout=10),
                   reader.post(f"{api}/mails/", json=MAIL, timeout=10), reader.get(f"{api}/keys/", timeout=10),
                   reader.get(f"{api}/analytics/breakers", timeout=10), reader.get(f"{api}/analytics/lag", timeout=10),
                   reader.post(f"{api}/keys/", json={}, timeout=10)):
        assert denied.status_code == 403, denied.request.url
        assert "lacks the" in denied.json()["error"]
    assert reader.get(f"{api}/mails/", timeout=10).status_code == 200
    assert reader.get(f"{api}/analytics/providers", timeout=10).status_code == 200


def test_a_minted_key_is_listed_without_its_secret_and_revoked_keys_are_refused(api):
    minted = new_key(api, tenant="acme", scopes=["read"], name="reporting")
    token, key_id = minted["key"], minted["id"]
    assert minted["tenant"] == "acme" and minted["scopes"] == ["read"] and minted["active"]
    secret = token.rsplit("_", 1)[1]
    listed = gateway.get(f"{api}/keys/", params={"tenant": "acme"}, timeout=10)
    assert key_id in {k["id"] for k in listed.json()["keys"]} and secret not in listed.text
    shown = gateway.get(f"{api}/keys/{key_id}", timeout=10)
    assert shown.json()["name"] == "reporting" and secret not in shown.text and "sha256" not in shown.text
    reader = key_session(token)
    assert reader.get(f"{api}/mails/", timeout=10).status_code == 200

    revoked = gateway.delete(f"{api}/keys/{key_id}", timeout=10)
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert gateway.delete(f"{api}/keys/{key_id}", timeout=10).json()["revoked_at"] == revoked.json()["revoked_at"]
    # Each gateway process reads the revocation from the key topic; every one refuses the key soon after.
    wait_for(lambda: all(reader.get(f"{api}/mails/", timeout=10).status_code == 401 for _ in range(10)),
             what="every gateway process to refuse the revoked key")
    assert gateway.get(f"{api}/keys/nope", timeout=10).status_code == 404


def test_a_bad_key_request_names_the_field(api):
    for body, field in (({"tenant": "Not A Tenant"}, "tenant"), ({"scopes": ["root"]}, "scopes"),
                        ({"rate_per_s": -5}, "rate_per_s"), ({"owner": "me"}, "owner")):
        answer = gateway.post(f"{api}/keys/", json=body, timeout=10)
        assert answer.status_code == 422 and answer.json()["field"] == field, answer.text
    assert gateway.post(f"{api}/keys/", data=b"[1]", timeout=10).status_code == 400


def test_tenants_see_only_their_own_mails_and_analytics(api, sandbox):
    mine = key_session(new_key(api, tenant=new_tenant(), scopes=["send", "read"])["key"])
    theirs = key_session(new_key(api, tenant=new_tenant(), scopes=["send", "read"])["key"])
    mail_id = post_mail(api, unique_subject("tenant mail"), session=mine)
    wait_for_event(api, mail_id, "sent", session=mine)
    wait_for(lambda: mine.get(f"{api}/mails/{mail_id}", timeout=10).json().get("status") in ("sent", "delivered"),
             what="the mail in its tenant's history")

    assert theirs.get(f"{api}/mails/{mail_id}", timeout=10).status_code == 404
    assert theirs.get(f"{api}/mails/{mail_id}/events/", timeout=10).status_code == 404
    assert theirs.get(f"{api}/analytics/mails/{mail_id}/trace", timeout=10).status_code == 404
    assert theirs.post(f"{api}/mails/{mail_id}/events/", json={"event": "clicked"}, timeout=10).status_code == 404
    assert theirs.get(f"{api}/mails/", timeout=10).json()["total"] == 0
    assert theirs.get(f"{api}/analytics/providers", timeout=10).json()["providers"] == []
    assert theirs.get(f"{api}/analytics/delivery-time", timeout=10).json()["delivery_time"]["count"] == 0

    listed = mine.get(f"{api}/mails/", timeout=10).json()
    assert [m["id"] for m in listed["mails"]] == [mail_id] and listed["total"] == 1
    assert sum(p["sent"] for p in mine.get(f"{api}/analytics/providers", timeout=10).json()["providers"]) == 1
    assert mine.get(f"{api}/analytics/mails/{mail_id}/trace", timeout=10).status_code == 200
    assert mine.post(f"{api}/mails/{mail_id}/events/", json={"event": "clicked"}, timeout=10).status_code == 202

    refused = mine.post(f"{api}/mails/", json={**MAIL, "sender": "not an address"}, timeout=10).json()["mail_id"]
    wait_for(lambda: mine.get(f"{api}/mails/{refused}/events/", timeout=10).status_code == 200,
             what="the tenant's own rejected request in its history")
    assert mine.get(f"{api}/analytics/mails/{refused}/trace", timeout=10).json()["rejected"] is True
    assert theirs.get(f"{api}/mails/{refused}/events/", timeout=10).status_code == 404
    assert theirs.get(f"{api}/analytics/mails/{refused}/trace", timeout=10).status_code == 404


def test_one_idempotency_key_in_two_tenants_is_two_mails(api):
    key = f"order-{uuid.uuid4().hex}"
    answers = [key_session(new_key(api, tenant=new_tenant(), scopes=["send"])["key"]).post(
        f"{api}/mails/", json=MAIL, headers={"Idempotency-Key": key}, timeout=10) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json()["id"] != answers[1].json()["id"]
    assert not any("Idempotent-Replayed" in a.headers for a in answers)


def test_a_key_over_its_rate_gets_429_with_retry_after(api):
    limited = key_session(new_key(api, scopes=["send"], rate_per_s=0.2, burst=2)["key"])
    answers = [limited.post(f"{api}/mails/", json=MAIL, timeout=10) for _ in range(12)]
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {202, 429} and statuses.count(202) <= 3, statuses
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    body = refused.json()
    assert "over its request rate" in body["error"] and body["field"] == "authorization"


def test_the_cli_mints_lists_and_revokes_keys(stack, api):
    created = mercury(stack, "keys", "create", "--tenant", "cli-tenant", "--scope", "read", "--name", "from cli",
                      "--json")
    assert created.returncode == 0, created.stderr
    minted = orjson.loads(created.stdout)
    reader = key_session(minted["key"])
    wait_for(lambda: reader.get(f"{api}/mails/", timeout=10).status_code == 200, what="the gateways to know the key")
    assert reader.post(f"{api}/mails/", json=MAIL, timeout=10).status_code == 403

    listed = mercury(stack, "keys", "list", "--tenant", "cli-tenant", "--json")
    rows = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert minted["id"] in {row["id"] for row in rows}
    assert minted["key"].rsplit("_", 1)[1] not in listed.stdout
    shown = mercury(stack, "keys", "list", "--tenant", "cli-tenant").stdout
    assert f"id:         {minted['id']}" in shown and "scopes:     read" in shown and "name:       from cli" in shown

    revoked = mercury(stack, "keys", "revoke", minted["id"])
    assert revoked.returncode == 0 and minted["id"] in revoked.stdout
    wait_for(lambda: all(reader.get(f"{api}/mails/", timeout=10).status_code == 401 for _ in range(10)),
             what="every gateway process to refuse the revoked key")
    unknown = mercury(stack, "keys", "revoke", "0000000000000000")
    assert unknown.returncode == 1 and "no key" in unknown.stderr
    refused = mercury(stack, "keys", "create", "--tenant", "Bad Tenant")
    assert refused.returncode == 1 and "tenant" in refused.stderr


def test_the_cli_without_a_key_says_so(stack):
    env = {"MERCURY_API_URL": stack.config.api_url, "PATH": "/usr/bin:/bin"}
    answer = subprocess.run([MERCURY, "report"], capture_output=True, text=True, timeout=60, env=env)
    assert answer.returncode != 0 and "401" in answer.stderr and "API key is required" in answer.stderr
