"""The analytics API against the running stack: numbers that agree with what the sandbox received."""
import time

import requests

from tests.e2e.conftest import gateway, post_mail, unique_subject, wait_for, wait_for_event
from tests.e2e.sessions import key_session, new_key, new_tenant


def get(api: str, path: str, **params: object) -> requests.Response:
    return gateway.get(f"{api}/analytics/{path}", params=params, timeout=10)


def test_provider_and_latency_answers_count_the_mails_just_sent(api, sandbox):
    since = int(time.time() * 1000)
    ids = [post_mail(api, unique_subject("analytics")) for _ in range(6)]
    for mail_id in ids:
        wait_for_event(api, mail_id, "sent")

    providers = wait_for(lambda: (r := get(api, "providers", since=since).json())["providers"]
                         and sum(p["sent"] for p in r["providers"]) >= len(ids) and r, what="provider counts")
    assert providers["since"] == since
    for row in providers["providers"]:
        assert row["provider"] in sandbox.ports and row["attempts"] >= row["sent"]
        assert row["latency_ms"]["p50_ms"] <= row["latency_ms"]["p99_ms"] <= row["latency_ms"]["max_ms"]

    delivery = get(api, "delivery-time", since=since).json()["delivery_time"]
    queue = get(api, "queue-time", since=since).json()["queue_time"]
    assert delivery["count"] >= len(ids) and queue["count"] >= len(ids)
    assert queue["p50_ms"] <= delivery["p50_ms"], "a mail waits in the queue before it is sent"
    assert delivery["p50_ms"] <= delivery["p95_ms"] <= delivery["p99_ms"] <= delivery["max_ms"]

    buckets = get(api, "providers/timeline", since=since, bucket_s=3600).json()["buckets"]
    assert sum(b["sent"] for b in buckets) == sum(p["sent"] for p in providers["providers"])


def test_a_trace_names_the_providers_tried_and_why_an_attempt_failed(api, sandbox):
    sandbox.set_faults("mailgun", down=True)
    since = int(time.time() * 1000)
    mail_id = post_mail(api, unique_subject("trace"))
    wait_for_event(api, mail_id, "sent")
    trace = wait_for(lambda: (r := get(api, f"mails/{mail_id}/trace").json()).get("status") in ("sent", "delivered")
                     and r,
                     what="the trace to end in sent")
    assert trace["providers_tried"][-1] == "sendgrid" and trace["accepted_at"] <= trace["finished_at"]
    assert all(f["provider"] == "mailgun" and f["cause"] == "network" for f in trace["failures"])
    causes = get(api, "failure-causes", since=since).json()["failure_causes"]
    assert sum(c["network"] for c in causes if c["provider"] == "mailgun") == len(trace["failures"])


def test_a_mail_not_finished_is_listed_with_its_last_event(api, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, error_rate=1, status=503)
    mail_id = post_mail(api, unique_subject("stuck"))
    wait_for_event(api, mail_id, "retry_scheduled")
    stuck = get(api, "unfinished", older_than_s=0, limit=1000).json()["mails"]
    [mine] = [m for m in stuck if m["mail"] == mail_id]
    assert mine["last_event"] == "retry_scheduled" and mine["attempts"] >= 1


def test_bad_parameters_and_unknown_mails_get_clear_errors(api):
    assert get(api, "providers", since="yesterday").status_code == 422
    assert get(api, "providers", since="2026-01-01T00:00:00").json()["field"] == "since"
    assert get(api, "providers/timeline", bucket_s=0).status_code == 422
    assert get(api, "mails/no-such-mail/trace").status_code == 404
    assert set(gateway.get(f"{api}/analytics/", timeout=10).json()) >= {"providers", "delivery_time", "trace"}


def test_breaker_changes_are_recorded_with_who_and_why(api, sandbox):
    since = int(time.time() * 1000)
    sandbox.set_faults("mailgun", down=True)
    ids = [post_mail(api, unique_subject("breaker")) for _ in range(8)]
    for mail_id in ids:
        wait_for_event(api, mail_id, "sent")

    def opened() -> list[dict]:
        # Which worker picks Mailgun first is chance: more mails until one worker met enough failures.
        post_mail(api, unique_subject("breaker"))
        changes = get(api, "breakers", since=since).json()["breakers"]["changes"]
        return [c for c in changes if c["provider"] == "mailgun" and c["state"] == "open"]

    [first, *_] = wait_for(opened, timeout=60, every=0.5, what="the mailgun breaker's opening in ClickHouse")
    assert first["worker"] and "Error" in first["reason"] and first["changed_at"] >= since
    sandbox.clear_faults()

    def closed() -> dict | None:
        post_mail(api, unique_subject("breaker recovery"))
        now = {p["provider"]: p for p in get(api, "breakers", since=since).json()["breakers"]["providers"]}
        return now.get("mailgun", {}).get("state") == "closed" and now["mailgun"]

    state = wait_for(closed, timeout=60, every=1, what="the mailgun breaker to close after a probe")
    assert state["changed_at"] > first["changed_at"]
    before = get(api, "breakers", since=since, until=first["changed_at"]).json()["breakers"]["changes"]
    assert all(c["changed_at"] < first["changed_at"] for c in before)


def test_a_window_has_an_end(api, sandbox):
    since = int(time.time() * 1000)
    mail_id = post_mail(api, unique_subject("window end"))
    wait_for_event(api, mail_id, "sent")
    accepted = wait_for(lambda: get(api, f"mails/{mail_id}/trace").json().get("accepted_at"), what="the trace")
    counted = wait_for(lambda: (r := get(api, "delivery-time", since=accepted, until=accepted + 1).json())
                       ["delivery_time"]["count"] and r, what="the delivery to be counted")
    assert counted["until"] == accepted + 1 and counted["since"] == accepted >= since
    # The window ends where this mail begins: the mails posted one by one before it were accepted earlier.
    assert get(api, "delivery-time", since=accepted - 1, until=accepted).json()["delivery_time"]["count"] == 0
    refused = get(api, "providers", since=since, until=since)
    assert refused.status_code == 422 and refused.json()["field"] == "until"


def test_provider_webhooks_join_the_trace_and_the_feedback_counts(api, sandbox):
    # SendGrid stamps its events in whole seconds: the window starts at the second before.
    since = (int(time.time()) - 1) * 1000
    mail_id = post_mail(api, unique_subject("feedback"), recipients="click@example.com")
    wait_for_event(api, mail_id, "sent")

    def reported() -> dict | None:
        trace = get(api, f"mails/{mail_id}/trace").json()
        return {f["event"] for f in trace["feedback"]} >= {"delivered", "opened", "clicked"} and trace

    trace = wait_for(reported, what="the sandbox's webhooks on the mail's trace")
    [sent] = [e for e in trace["events"] if e["event"] == "sent"]
    assert {f["message_id"] for f in trace["feedback"]} == {sent["message_id"]}
    assert all(f["provider"] == sent["provider"] and f["recipient"] == "click@example.com" for f in trace["feedback"])
    assert [f["url"] for f in trace["feedback"] if f["event"] == "clicked"][0].startswith("http")
    counts = {row["provider"]: row for row in get(api, "feedback", since=since).json()["feedback"]}
    assert counts[sent["provider"]]["clicked"] >= 1 and counts[sent["provider"]]["delivered"] >= 1


def test_rejections_tell_a_tenant_which_of_its_requests_were_refused_and_why(api):
    since = int(time.time() * 1000)
    tenant = new_tenant()
    mine = key_session(new_key(api, tenant=tenant, scopes=["send", "read"])["key"])
    limited = key_session(new_key(api, tenant=tenant, scopes=["send"], rate_per_s=0.01, burst=1)["key"])
    other = key_session(new_key(api, tenant=new_tenant(), scopes=["send", "read"])["key"])
    good = {"sender": "alice@example.com", "recipients": "bob@example.com", "subject": unique_subject("refused"),
            "content": "hello"}

    refused = [mine.post(f"{api}/mails/", json={**good, "recipients": bad}, timeout=10) for bad in ("nobody", "x@")]
    assert [(r.status_code, r.json()["field"]) for r in refused] == [(422, "recipients")] * 2
    batch = mine.post(f"{api}/mails/batch", timeout=10,
                      json={"mails": [good, {**good, "recipients": "nobody"}, {**good, "sender": "nobody"}]})
    assert [item["code"] for item in batch.json()["mails"]] == [202, 422, 422], batch.text
    over_rate = [limited.post(f"{api}/mails/", json=good, timeout=10).status_code for _ in range(10)].count(429)
    assert over_rate >= 1
    no_subject = {name: value for name, value in good.items() if name != "subject"}
    assert other.post(f"{api}/mails/", json=no_subject, timeout=10).status_code == 422

    def rejections(session: requests.Session, total: int) -> dict | None:
        answer = session.get(f"{api}/analytics/rejections", params={"since": since}, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()["rejections"]["total"] >= total and answer.json()

    # Over-rate refusals are summarised by each gateway process every 10 s.
    answer = wait_for(lambda: rejections(mine, 4 + over_rate), timeout=40, what="the tenant's rejections")
    assert answer["since"] == since
    fields = {row["field"]: row for row in answer["rejections"]["fields"]}
    assert {field: row["count"] for field, row in fields.items()} == {
        "authorization": over_rate, "recipients": 2, "mails[].recipients": 1, "mails[].sender": 1}
    assert answer["rejections"]["total"] == 4 + over_rate
    counts = [row["count"] for row in answer["rejections"]["fields"]]
    assert counts == sorted(counts, reverse=True)
    last = fields["recipients"]
    assert last["last_mail"] == refused[-1].json()["mail_id"] and last["last_reason"] == refused[-1].json()["error"]
    assert since <= last["last_at"] <= int(time.time() * 1000)
    assert "over its request rate" in fields["authorization"]["last_reason"]
    summary = fields["authorization"]["last_mail"]
    assert mine.get(f"{api}/analytics/mails/{summary}/trace", timeout=10).json()["rejected"] is True

    # Another tenant sees its own refusal alone, and none of this tenant's.
    theirs = wait_for(lambda: rejections(other, 1), what="the other tenant's rejection")["rejections"]
    assert [(row["field"], row["count"]) for row in theirs["fields"]] == [("subject", 1)] and theirs["total"] == 1
    assert other.get(f"{api}/analytics/mails/{summary}/trace", timeout=10).status_code == 404
    # No key, or a key without the read scope, is refused.
    anonymous = requests.get(f"{api}/analytics/rejections", timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    sender = key_session(new_key(api, tenant=tenant, scopes=["send"])["key"])
    assert sender.get(f"{api}/analytics/rejections", timeout=10).status_code == 403
    listed = gateway.get(f"{api}/analytics/", timeout=10).json()["rejections"]
    assert listed == "/api/v1.0/analytics/rejections?since=&until="
