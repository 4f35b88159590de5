"""A request the gateway refused is readable by the id its 422 named (`GET /mails/<id>`: status `rejected`, the
reason and the field), by its own tenant alone: another tenant's key gets the 404 a missing mail gets."""
import time

import requests

from ingest.mails.acceptor import mail_url
from tests.e2e.conftest import wait_for
from tests.e2e.sessions import gateway, key_session, new_key, new_tenant

BODY = {"sender": "alice@example.com", "recipients": "not-an-address", "subject": "refused", "content": "hi"}


def test_a_refused_request_is_its_tenants_to_read_by_its_id(api: str):
    mine = key_session(new_key(api, tenant=new_tenant(), scopes=["send", "read"])["key"])
    theirs = key_session(new_key(api, tenant=new_tenant(), scopes=["send", "read"])["key"])
    before = int(time.time() * 1000)
    answer = mine.post(f"{api}/mails/", json=BODY, timeout=10)
    assert answer.status_code == 422 and answer.json()["field"] == "recipients", answer.text
    refused = answer.json()["mail_id"]

    read = wait_for(lambda: (r := mine.get(f"{api}/mails/{refused}", timeout=10)).status_code == 200 and r.json(),
                    what="the refused request under its id")
    assert read["id"] == refused and read["status"] == "rejected" and read["field"] == "recipients"
    assert read["reason"] == answer.json()["error"]
    assert before - 1000 <= read["created_at"] <= int(time.time() * 1000)
    assert read["url"] == mail_url(refused) and read["events_url"] == f"{mail_url(refused)}/events/"
    events = mine.get(f"{api}/mails/{refused}/events/", timeout=10).json()["events"]
    assert [e["event"] for e in events] == ["rejected"]
    assert refused not in {m["id"] for m in mine.get(f"{api}/mails/", timeout=10).json()["mails"]}, "no mail"

    missing = f"{refused}-missing"
    for path in ("/mails/{}", "/mails/{}/events/", "/analytics/mails/{}/trace"):
        for session in (theirs, gateway):  # another tenant's key, and the stack's key (the default tenant)
            other = session.get(f"{api}{path.format(refused)}", timeout=10)
            nothing = session.get(f"{api}{path.format(missing)}", timeout=10)
            assert other.status_code == nothing.status_code == 404, (path, other.text)
            assert other.text == nothing.text.replace(missing, refused), path
    assert requests.get(f"{api}/mails/{refused}", timeout=10).status_code == 401
    reader_without_scope = key_session(new_key(api, tenant=new_tenant(), scopes=["send"])["key"])
    assert reader_without_scope.get(f"{api}/mails/{refused}", timeout=10).status_code == 403
    # A client records its own steps on mails only: a refused request is none.
    assert mine.post(f"{api}/mails/{refused}/events/", json={"event": "note"}, timeout=10).status_code == 404
