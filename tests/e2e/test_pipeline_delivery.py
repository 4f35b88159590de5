"""A mail's life through the real stack: HTTP → Kafka → dispatcher → sandbox provider → ClickHouse."""
import time

from schemas.logs import find_events
from tests.e2e.conftest import dead_letters, events_of, gateway, post_mail, unique_subject, wait_for, wait_for_event


def kinds(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


def test_a_posted_mail_is_sent_exactly_once_and_traced(api, sandbox):
    subject = unique_subject("hello")
    response = gateway.post(f"{api}/mails/", json={
        "sender": "alice@example.com", "recipients": "bob@example.com, carol@example.com",
        "subject": subject, "content": "Hi both"}, timeout=10)
    assert response.status_code == 202
    mail_id = response.json()["id"]
    assert response.headers["MailId"] == mail_id
    assert response.headers["Location"] == f"/api/v1.0/mails/{mail_id}"

    events = wait_for_event(api, mail_id, "sent")
    assert kinds(events) == ["accepted", "dispatched", "sent"]
    assert events[1]["provider"] == events[2]["provider"]
    assert sum(sandbox.received(subject).values()) == 1

    mail = gateway.get(f"{api}/mails/{mail_id}", timeout=10).json()
    assert mail["recipients"] == ["bob@example.com", "carol@example.com"]
    assert mail["status"] in ("sent", "delivered")  # delivered once the sandbox's webhook is stored
    listed = gateway.get(f"{api}/mails/", params={"per_page": 500}, timeout=10).json()
    assert mail_id in [m["id"] for m in listed["mails"]]
    event = gateway.get(f"{api}/mails/{mail_id}/events/{events[2]['id']}", timeout=10).json()
    assert event["event"] == "sent" and set(event) >= {"id", "created_at", "created_by", "event", "mail", "blob"}


def test_one_provider_down_fails_over_and_opens_its_breaker(api, sandbox, stack):
    sandbox.set_faults("mailgun", down=True)
    burst = [unique_subject("failover") for _ in range(40)]
    for mail_id in [post_mail(api, s) for s in burst]:
        wait_for_event(api, mail_id, "sent")
    for subject in burst:
        assert sandbox.received(subject) == {"mailgun": 0, "sendgrid": 1}
    for worker in ("dispatcher-0", "dispatcher-1"):
        changes = find_events(stack.processes[worker].tail(2000), "provider_health")
        assert any(change["provider"] == "mailgun" and change["state"] == "open" for change in changes)

    # The breaker is open fleet-wide: later mails go straight to sendgrid, with one half-open probe at a time.
    after = [post_mail(api, unique_subject("failover-after")) for _ in range(20)]
    attempts = []
    for mail_id in after:
        events = wait_for_event(api, mail_id, "sent")
        assert events[-1]["provider"] == "sendgrid"
        attempts += [e for e in events if e["event"] == "attempt_failed"]
    assert all(e["provider"] == "mailgun" and e["outcome"] == "transient" for e in attempts)
    assert len(attempts) <= 2


def test_both_providers_down_mails_wait_on_the_ladder_then_deliver(api, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, error_rate=1, status=503)
    subjects = [unique_subject("ladder") for _ in range(5)]
    ids = [post_mail(api, s) for s in subjects]
    for mail_id in ids:
        wait_for_event(api, mail_id, "retry_scheduled")
    sandbox.clear_faults()
    for mail_id in ids:
        events = wait_for_event(api, mail_id, "sent", timeout=60)
        assert "dead_lettered" not in kinds(events)
    for subject in subjects:
        assert sum(sandbox.received(subject).values()) == 1


def test_a_permanent_error_is_dead_lettered_without_retry(api, sandbox, stack):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, reject_recipients=["bounce-"])
    mail_id = post_mail(api, unique_subject("bounce"), recipients="bounce-me@example.com")
    events = wait_for_event(api, mail_id, "dead_lettered")
    assert kinds(events) == ["accepted", "dispatched", "attempt_failed", "dead_lettered"]
    assert events[2]["outcome"] == "permanent"
    letters = dead_letters(stack.config.bootstrap, lambda d: d["mail_id"] == mail_id, 1)
    assert letters and letters[0]["outcome"] == "permanent" and letters[0]["reason"]
    # A bad recipient says nothing about the provider: a healthy mail still goes through at once.
    ok = post_mail(api, unique_subject("after-bounce"))
    assert kinds(wait_for_event(api, ok, "sent")) == ["accepted", "dispatched", "sent"]


def test_ambiguous_timeout_is_recorded_and_retried_elsewhere(api, sandbox):
    sandbox.set_faults("mailgun", timeout=True)
    sandbox.set_faults("sendgrid", down=True)
    mail_id = post_mail(api, unique_subject("ambiguous"))
    wait_for(lambda: any(e["outcome"] == "ambiguous" for e in events_of(api, mail_id)), 30,
             what="an ambiguous attempt")
    sandbox.clear_faults()
    events = wait_for_event(api, mail_id, "sent", timeout=60)
    ambiguous = [e for e in events if e["outcome"] == "ambiguous"]
    assert ambiguous and ambiguous[0]["provider"] == "mailgun"


def test_a_scheduled_mail_waits_until_its_time_then_is_sent_once(api, sandbox):
    subject = unique_subject("scheduled")
    send_at = int(time.time() * 1000) + 3_000
    mail_id = post_mail(api, subject, send_at=send_at)
    events = wait_for_event(api, mail_id, "sent", timeout=60)
    assert kinds(events) == ["accepted", "scheduled", "dispatched", "sent"]
    assert events[-1]["created_at"] >= send_at, "never sent before its time"
    assert sum(sandbox.received(subject).values()) == 1
