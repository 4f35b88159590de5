"""The analytics API against the running stack: numbers that agree with what the sandbox received."""
import time

import requests

from tests.e2e.conftest import post_mail, unique_subject, wait_for, wait_for_event


def get(api: str, path: str, **params: object) -> requests.Response:
    return requests.get(f"{api}/analytics/{path}", params=params, timeout=10)


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
    trace = wait_for(lambda: (r := get(api, f"mails/{mail_id}/trace").json()).get("status") == "sent" and r,
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
    assert set(requests.get(f"{api}/analytics/", timeout=10).json()) >= {"providers", "delivery_time", "trace"}
