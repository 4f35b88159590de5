"""The operators' questions answered from ClickHouse match what the test sent through the real stack."""
import time

from analytics.questions import delivery_time_stats, failure_causes, provider_stats, queue_time_stats, unfinished_mails
from tests.e2e.conftest import events_of, post_mail, unique_subject, wait_for, wait_for_event

SLOW_MS = 80


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def exact_quantile(values: list[int], level: float) -> int:
    """quantileExact's definition: the value at rank floor(level * n) of the sorted values."""
    ordered = sorted(values)
    return ordered[min(int(level * len(ordered)), len(ordered) - 1)]


def first(events: list[dict], kind: str) -> dict:
    return next(e for e in events if e["event"] == kind)


def test_provider_and_latency_answers_match_what_was_sent(api, sandbox, clickhouse_client):
    sandbox.set_faults("sendgrid", latency_ms=SLOW_MS)
    since = now_ms()
    ids = [post_mail(api, unique_subject("questions")) for _ in range(30)]
    traces = [wait_for_event(api, mail_id, "sent") for mail_id in ids]
    wait_for(lambda: delivery_time_stats(clickhouse_client, since)["count"] == len(ids), what="all sent stored")

    by_provider: dict[str, int] = {}
    for events in traces:
        provider = first(events, "sent")["provider"]
        by_provider[provider] = by_provider.get(provider, 0) + 1
    stats = {row["provider"]: row for row in provider_stats(clickhouse_client, since)}
    assert {p: row["sent"] for p, row in stats.items()} == by_provider
    assert all(row["failed"] == 0 and row["success_rate"] == 1.0 for row in stats.values())
    assert stats["sendgrid"]["latency_ms"]["p50_ms"] >= SLOW_MS > stats["mailgun"]["latency_ms"]["p50_ms"]

    durations = [first(e, "sent")["created_at"] - first(e, "accepted")["created_at"] for e in traces]
    delivery = delivery_time_stats(clickhouse_client, since)
    assert delivery["max_ms"] == max(durations)
    assert delivery["p50_ms"] == exact_quantile(durations, 0.5)
    assert delivery["p99_ms"] == exact_quantile(durations, 0.99)
    queue = queue_time_stats(clickhouse_client, since)
    assert queue["count"] == len(ids) and queue["p50_ms"] <= delivery["p50_ms"]


def test_failure_causes_tell_network_from_provider_outage(api, sandbox, clickhouse_client):
    sandbox.set_faults("mailgun", down=True)
    sandbox.set_faults("sendgrid", error_rate=0.5, status=503)
    since = now_ms()
    ids = [post_mail(api, unique_subject("causes")) for _ in range(10)]
    for mail_id in ids:
        wait_for(lambda: {"sent", "retry_scheduled"} & {e["event"] for e in events_of(api, mail_id)},
                 what=f"a first outcome for {mail_id}")
    sandbox.clear_faults()
    failures = [e for mail_id in ids for e in wait_for_event(api, mail_id, "sent", timeout=60)
                if e["event"] == "attempt_failed"]
    network = sum(1 for f in failures if f["provider"] == "mailgun" and '"cause":"network"' in f["blob"])
    outage = sum(1 for f in failures if f["provider"] == "sendgrid" and '"cause":"provider"' in f["blob"])
    assert network + outage == len(failures) > 0

    wait_for(lambda: sum(r["total"] for r in failure_causes(clickhouse_client, since)) == len(failures),
             what="every failure stored")
    answers = {row["provider"]: row for row in failure_causes(clickhouse_client, since)}
    assert answers.get("mailgun", {}).get("network", 0) == network
    assert answers.get("sendgrid", {}).get("provider_outage", 0) == outage


def test_a_mail_waiting_on_the_ladder_is_reported_unfinished_until_it_is_sent(api, sandbox, clickhouse_client):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, down=True)
    mail_id = post_mail(api, unique_subject("stuck"))
    wait_for_event(api, mail_id, "retry_scheduled")

    def reported() -> dict | None:
        return next((m for m in unfinished_mails(clickhouse_client, 0) if m["mail"] == mail_id), None)

    stuck = wait_for(reported, what="the mail in the unfinished report")
    assert stuck["last_event"] == "retry_scheduled" and stuck["attempts"] >= 1
    sandbox.clear_faults()
    wait_for_event(api, mail_id, "sent", timeout=60)
    wait_for(lambda: reported() is None, what="the mail to leave the unfinished report")
    assert [e["event"] for e in events_of(api, mail_id)][-1] == "sent"
