"""Mail ids are unique per tenant: two tenants' outside producers publishing the same id (`order-4711`) never
share a mail. A tenant other than the default one publishes under its own prefix (`<tenant>:`); its record
without the prefix is dead-lettered with the reason, filed under its place on the topic (never under the id it
used, which may be another tenant's mail), and neither tenant's reads show anything of the other's."""
import time
import uuid

import orjson
import requests
from confluent_kafka import Producer

from deploy.stack import LocalStack
from ingest.mails.idempotency import body_digest, legacy_mail_id_for, mail_id_for
from ingest.mails.request_body import mail_from_body
from schemas import codec
from schemas.events import accepted_event, encode_event
from schemas.model import DEFAULT_TENANT
from tests.e2e.conftest import dead_letters, unique_subject, wait_for, wait_for_event
from tests.e2e.sessions import gateway, key_session

ORDER = "order-4711"


def tenant_session(api: str, tenant: str) -> requests.Session:
    """Requests with a fresh send + read key of `tenant`, minted with the stack's key."""
    answer = gateway.post(f"{api}/keys/", json={"tenant": tenant, "scopes": ["send", "read"]}, timeout=10)
    assert answer.status_code == 201, answer.text
    return key_session(answer.json()["key"])


def outside_record(mail_id: str, tenant: str, subject: str) -> dict:
    return {"id": mail_id, "sender": "shop@example.com", "recipients": ["bob@example.com"], "subject": subject,
            "content": "Your order", "created_at": int(time.time() * 1000), "origin": "kafka", "tenant": tenant}


def read_mail(api: str, session: requests.Session, mail_id: str) -> dict:
    return wait_for(lambda: (r := session.get(f"{api}/mails/{mail_id}", timeout=10)).status_code == 200 and r.json(),
                    what=f"mail {mail_id} in its tenant's history")


def test_two_tenants_publishing_one_id_each_read_only_their_own_mail(api: str, stack: LocalStack, sandbox):
    acme = f"acme-{uuid.uuid4().hex[:8]}"
    ours, theirs = tenant_session(api, DEFAULT_TENANT), tenant_session(api, acme)
    subjects = {kind: unique_subject(f"{kind} order") for kind in ("default", "unprefixed", "prefixed")}
    default_mail = outside_record(ORDER, DEFAULT_TENANT, subjects["default"])
    unprefixed = outside_record(ORDER, acme, subjects["unprefixed"])
    prefixed = outside_record(f"{acme}:{ORDER}", acme, subjects["prefixed"])
    refused_bytes = codec.encode("mercury.MailRequest", unprefixed)
    producer = Producer({"bootstrap.servers": stack.config.bootstrap})
    # The refused record first: before the fix it took the id, and the default tenant's mail was the "duplicate".
    producer.produce("mail.requests", key=ORDER.encode(), value=refused_bytes)
    for record in (default_mail, prefixed):
        producer.produce("mail.requests", key=record["id"].encode(), value=codec.encode("mercury.MailRequest", record))
    assert producer.flush(10) == 0

    letters = dead_letters(stack.config.bootstrap, lambda d: d["payload"] == refused_bytes, 1)
    assert len(letters) == 1, "the unprefixed record of a non-default tenant was not dead-lettered"
    [letter] = letters
    assert letter["outcome"] == "malformed" and letter["source_topic"] == "mail.requests"
    assert letter["reason"].startswith("id:") and f"'{acme}:'" in letter["reason"], letter["reason"]
    assert "unique per tenant" in letter["reason"]
    # Filed under its place on the topic: a letter, or a replay of it, never lands on the default tenant's mail.
    refusal = letter["mail_id"]
    assert refusal == f"mail.requests:{letter['source_partition']}:{letter['source_offset']}"

    own = wait_for_event(api, ORDER, "sent", session=ours)
    assert [e["event"] for e in own] == ["accepted", "dispatched", "sent"]
    assert read_mail(api, ours, ORDER)["subject"] == subjects["default"]
    their_own = wait_for_event(api, f"{acme}:{ORDER}", "sent", session=theirs)
    assert [e["event"] for e in their_own] == ["accepted", "dispatched", "sent"]
    assert read_mail(api, theirs, f"{acme}:{ORDER}")["subject"] == subjects["prefixed"]

    # The default tenant's mail (read above) came after the refused record on the same partition: the sink has
    # seen both, so what follows is the final answer, not a race.
    assert read_mail(api, ours, ORDER)["status"] in ("sent", "delivered")
    assert [e["event"] for e in ours.get(f"{api}/mails/{ORDER}/events/", timeout=10).json()["events"]] == [
        "accepted", "dispatched", "sent"]
    for path in (f"/mails/{ORDER}", f"/mails/{ORDER}/events/"):
        assert theirs.get(f"{api}{path}", timeout=10).status_code == 404, path
    for path in (f"/mails/{acme}:{ORDER}", f"/mails/{acme}:{ORDER}/events/", f"/mails/{refusal}/events/"):
        assert ours.get(f"{api}{path}", timeout=10).status_code == 404, path
    listed = theirs.get(f"{api}/mails/", timeout=10).json()
    assert [m["id"] for m in listed["mails"]] == [f"{acme}:{ORDER}"] and listed["total"] == 1
    # Its own refusal is the sending tenant's to read, with the reason.
    rejected = wait_for(lambda: (r := theirs.get(f"{api}/mails/{refusal}/events/", timeout=10)).status_code == 200
                        and r.json()["events"], what="the tenant's own refusal")
    assert [e["event"] for e in rejected] == ["rejected"] and f"{acme}:" in rejected[0]["blob"]

    assert sum(sandbox.received(subjects["default"]).values()) == 1
    assert sum(sandbox.received(subjects["prefixed"]).values()) == 1
    assert sum(sandbox.received(subjects["unprefixed"]).values()) == 0


def test_a_key_used_before_ids_carried_their_tenant_still_stands_for_its_first_mail(api: str, stack: LocalStack):
    """A tenant's Idempotency-Key accepted under the old, unprefixed id (as the gateway wrote it then: the mail,
    and its `accepted` event with the body's digest) is answered with that mail when the client retries now:
    the retry must not become a second mail under the new id."""
    tenant = f"legacy-{uuid.uuid4().hex[:8]}"
    session = tenant_session(api, tenant)
    key = f"order-{uuid.uuid4().hex}"
    body = orjson.dumps({"sender": "alice@example.com", "recipients": "bob@example.com", "subject": "before",
                         "content": "hello"})
    earlier = mail_from_body(body, legacy_mail_id_for(key, tenant), tenant)
    producer = Producer({"bootstrap.servers": stack.config.bootstrap})
    producer.produce("mail.requests", codec.encode("mercury.MailRequest", earlier.to_record()), earlier.id)
    producer.produce("mail.events", encode_event(accepted_event(earlier, "ingest", idempotency_key=key,
                                                                body_sha256=body_digest(body))), earlier.id)
    assert producer.flush(15) == 0
    read_mail(api, session, earlier.id)

    retried = session.post(f"{api}/mails/", data=body, headers={"Idempotency-Key": key,
                                                                "Content-Type": "application/json"}, timeout=10)
    assert retried.status_code == 202 and retried.headers["Idempotent-Replayed"] == "true", retried.text
    assert retried.json()["id"] == earlier.id != mail_id_for(key, tenant)
    other = session.post(f"{api}/mails/", json={"sender": "alice@example.com", "recipients": "bob@example.com",
                                                "subject": "changed", "content": "hello"},
                         headers={"Idempotency-Key": key}, timeout=10)
    assert other.status_code == 422 and "different request" in other.json()["error"]
