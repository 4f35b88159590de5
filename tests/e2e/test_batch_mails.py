"""`POST /api/v1.0/mails/batch` against the whole running stack: one answer per mail, each mail accepted, refused
or replayed as `POST /mails/` would, rates counted in mails, keys kept per tenant."""
import uuid

import orjson
import requests

from ingest.config import IngestConfig
from ingest.mails.batch import MAX_MAILS
from ingest.mails.idempotency import mail_id_for
from tests.e2e.conftest import events_of, unique_subject, wait_for, wait_for_event
from tests.e2e.sessions import gateway, key_session, new_key, new_tenant
from tests.e2e.test_ingest_idempotency import copies_in_sandbox, requests_on_topic

GATEWAY_PROCESSES = IngestConfig.from_env().workers


def mail(subject: str, **extra: object) -> dict:
    return {"sender": "alice@example.com", "recipients": "bob@example.com", "subject": subject, "content": "hello",
            **extra}


def post_batch(api: str, mails: list, session: requests.Session = gateway) -> requests.Response:
    return session.post(f"{api}/mails/batch", json={"mails": mails}, timeout=30)


def test_good_mails_are_delivered_and_each_bad_one_is_refused_on_its_own(api, sandbox):
    subject = unique_subject("batch")
    mails = [mail(f"{subject} 0"), mail(f"{subject} 1", recipients="not-an-address"), "not a mail",
             mail(f"{subject} 3", tags=["spring"], metadata={"order": "7"}, cc=["carol@example.com"]),
             mail(f"{subject} 4", colour="blue")]
    answer = post_batch(api, mails)

    assert answer.status_code == 200, answer.text
    results = answer.json()["mails"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["code"] for r in results] == [202, 422, 422, 202, 422]
    assert [r["field"] for r in results if r["code"] == 422] == ["mails[1].recipients", "mails[2]", "mails[4].colour"]
    assert results[1]["error"].startswith("mails[1].recipients: 'not-an-address' is not a valid address")
    for accepted in (results[0], results[3]):
        assert accepted["status"] == "accepted" and accepted["url"] == f"/api/v1.0/mails/{accepted['id']}"
        wait_for_event(api, accepted["id"], "sent")
    stored = gateway.get(f"{api}/mails/{results[3]['id']}", timeout=10).json()
    # Sent, then delivered once the sandbox's webhook is stored.
    assert stored["subject"] == f"{subject} 3" and stored["status"] in ("sent", "delivered")
    [received] = [m for p in sandbox.ports for m in sandbox.messages(p) if m["subject"] == f"{subject} 3"]
    assert received["tags"] == ["spring"] and received["cc"] == ["carol@example.com"]
    for refused in (results[1], results[2], results[4]):
        events = wait_for(lambda r=refused: events_of(api, r["mail_id"]), what="the rejected event")
        assert [e["event"] for e in events] == ["rejected"]
        detail = orjson.loads(events[0]["blob"])
        assert detail["field"] == refused["field"] and detail["index"] == refused["index"]


def test_a_batch_of_good_mails_is_202_and_each_answer_is_the_single_routes(api):
    send_at = 4_102_444_800_000  # the year 2100, past the schedule limit: that mail is refused, the batch is 200
    answer = post_batch(api, [mail(unique_subject("all good")) for _ in range(3)])
    assert answer.status_code == 202, answer.text
    assert all(set(r) == {"index", "code", "id", "status", "url"} for r in answer.json()["mails"])
    partly = post_batch(api, [mail(unique_subject("later"), send_at=send_at), mail(unique_subject("now"))])
    assert partly.status_code == 200 and [r["code"] for r in partly.json()["mails"]] == [422, 202]
    assert partly.json()["mails"][0]["field"] == "mails[0].send_at"


def test_a_retried_batch_replays_each_keyed_mail_and_refuses_a_key_reused_for_another_mail(api, stack, sandbox):
    keys = [f"batch-{uuid.uuid4()}" for _ in range(3)]
    subject = unique_subject("keyed")
    mails = [mail(f"{subject} {i}", idempotency_key=key) for i, key in enumerate(keys)] + [mail(f"{subject} plain")]
    first = post_batch(api, mails)
    assert first.status_code == 202, first.text
    ids = [r["id"] for r in first.json()["mails"]]
    assert ids[:3] == [mail_id_for(key) for key in keys]
    for mail_id in ids:
        wait_for_event(api, mail_id, "sent")

    # Another order of the same fields is the same mail; the unkeyed one is sent again, as a retry without a key is.
    reordered = [dict(reversed(list(m.items()))) for m in mails]
    reordered[1]["subject"] = f"{subject} changed"
    for _ in range(2):  # the stack's gateway runs two processes: retries reach both, and ClickHouse answers for one
        again = post_batch(api, reordered)
        assert again.status_code == 200, again.text
        results = again.json()["mails"]
        assert [r["code"] for r in results] == [202, 422, 202, 202]
        assert results[0] == {**first.json()["mails"][0], "replayed": True}
        assert results[2] == {**first.json()["mails"][2], "replayed": True}
        assert results[1]["field"] == "mails[1].idempotency_key"
        assert "was used for a different request" in results[1]["error"] and results[1]["mail_id"] != ids[1]
        assert results[3]["id"] != ids[3] and "replayed" not in results[3]
    for mail_id in ids[:3]:
        assert len(requests_on_topic(stack.config.bootstrap, mail_id)) == 1
        assert copies_in_sandbox(sandbox, mail_id) == 1


def test_a_key_given_twice_in_one_batch_is_refused_the_second_time(api):
    key = f"twice-{uuid.uuid4()}"
    answer = post_batch(api, [mail(unique_subject("once"), idempotency_key=key),
                              mail(unique_subject("twice"), idempotency_key=key),
                              mail(unique_subject("bad key"), idempotency_key="caf\u00e9")])
    results = answer.json()["mails"]
    assert answer.status_code == 200 and [r["code"] for r in results] == [202, 422, 422]
    assert results[0]["id"] == mail_id_for(key)
    assert results[1]["field"] == "mails[1].idempotency_key" and "mails[0]" in results[1]["error"]
    assert results[2]["field"] == "mails[2].idempotency_key" and "printable ASCII" in results[2]["error"]


def test_another_tenant_using_the_same_key_gets_its_own_mail_and_cannot_read_the_first(api):
    key = f"shared-{uuid.uuid4()}"
    first_tenant, second_tenant = new_tenant(), new_tenant()
    first = key_session(new_key(api, tenant=first_tenant, scopes=["send", "read"])["key"])
    second = key_session(new_key(api, tenant=second_tenant, scopes=["send", "read"])["key"])
    same = [mail(unique_subject("tenant"), idempotency_key=key)]

    [mine] = post_batch(api, same, first).json()["mails"]
    wait_for_event(api, mine["id"], "accepted", session=first)
    [theirs] = post_batch(api, same, second).json()["mails"]
    assert mine["code"] == theirs["code"] == 202 and "replayed" not in theirs
    assert mine["id"] == mail_id_for(key, first_tenant) != theirs["id"] == mail_id_for(key, second_tenant)
    assert second.get(f"{api}/mails/{mine['id']}", timeout=10).status_code == 404
    [again] = post_batch(api, same, first).json()["mails"]
    assert again == {**mine, "replayed": True}


def test_the_limits_refuse_the_whole_request(api):
    too_many = post_batch(api, [mail("x")] * (MAX_MAILS + 1))
    assert too_many.status_code == 422 and too_many.json()["field"] == "mails", too_many.text
    assert str(MAX_MAILS) in too_many.json()["error"]
    for body, status, field in (({"mails": []}, 422, "mails"), ({}, 422, "mails"), ({"mails": {}}, 422, "mails"),
                                ({"mails": [mail("x")], "mode": "strict"}, 422, "mode"), ([mail("x")], 400, "body")):
        answer = gateway.post(f"{api}/mails/batch", json=body, timeout=10)
        assert answer.status_code == status and answer.json()["field"] == field, (body, answer.text)
        assert answer.json()["mail_id"]
    # tests/security/test_body_limits.py cuts a batch past MERCURY_MAX_BATCH_BODY_BYTES. A mail is held to the
    # single route's rules inside a batch, whatever room the batch has.
    [long] = post_batch(api, [mail("s" * 1000)]).json()["mails"]
    assert long["code"] == 422 and long["field"] == "mails[0].subject"


def test_the_rate_counts_mails_and_the_mails_past_it_are_refused_each(api):
    # Each gateway process admits its share of the burst: a fresh key's first request finds a full share.
    share = 5
    limited = key_session(new_key(api, scopes=["send"], rate_per_s=0.01, burst=share * GATEWAY_PROCESSES)["key"])
    answer = post_batch(api, [mail(unique_subject(f"rated {i}")) for i in range(share + 3)], limited)
    assert answer.status_code == 200, answer.text
    results = answer.json()["mails"]
    assert [r["code"] for r in results] == [202] * share + [429] * 3
    assert all(r["field"] == "authorization" and "over its request rate" in r["error"] for r in results[share:])
    assert int(answer.headers["Retry-After"]) >= 1
    # The same connection reaches the same process: its share is spent, so the next batch is refused whole.
    spent = post_batch(api, [mail(unique_subject("rated again"))], limited)
    assert spent.status_code == 429 and spent.headers["Retry-After"], spent.text


def test_a_batch_needs_a_key_with_the_send_scope(api):
    anonymous = requests.post(f"{api}/mails/batch", json={"mails": [mail("x")]}, timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    reader = key_session(new_key(api, scopes=["read"])["key"])
    assert post_batch(api, [mail("x")], reader).status_code == 403
