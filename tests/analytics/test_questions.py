"""The operators' questions against a synthetic history whose answers are computed here, plainly, from
the records themselves. Every row is written twice, so a doubled count fails the test."""
import re
import threading
from collections import Counter, defaultdict

import orjson
import pytest
from clickhouse_driver import Client
from current_clickhouse import both_versions
from pipeline import Records, write_twice

from analytics import questions
from analytics.rows import FEEDBACK_COLUMNS, HEALTH_COLUMNS, event_row, mail_row
from analytics.writer import Writer

pytestmark = both_versions

T0 = 1_750_000_000_000
PROVIDERS = ("alpha", "beta", "gamma")
# Attempt scripts: (provider, outcome, cause) per attempt; outcome "accepted" means sent.
SCRIPTS = [
    [("alpha", "accepted", None)],
    [("beta", "transient", "network"), ("alpha", "accepted", None)],
    [("gamma", "transient", "rate_limit"), ("beta", "transient", "provider")],
    [("gamma", "permanent", None)],
    [("alpha", "provider_failure", None), ("beta", "ambiguous", None), ("gamma", "accepted", None)],
    [("beta", "transient", None), ("gamma", "accepted", None)],
]
TERMINAL = {"sent", "dead_lettered", "rejected"}


class History:
    """Builds the records and keeps the plain facts the expectations are computed from."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.mails: list[dict] = []
        self.events: list[dict] = []

    def add_mail(self, i: int) -> None:
        accepted = T0 + i * 1000
        mail = self.records.mail(accepted)
        # Some mails come from outside producers (no accepted event); some only have the event.
        if i % 7 != 3:
            self.mails.append(mail)
        if i % 7 != 0:
            self.events.append(self.records.event(mail["id"], "accepted", accepted))
        at = accepted + 10 + (i * 37) % 400
        script = SCRIPTS[i % len(SCRIPTS)]
        for provider, outcome, cause in script:
            self.events.append(self.records.event(mail["id"], "dispatched", at, provider))
            at += 1 + (i * 13) % 50
            if outcome == "accepted":
                latency = 20 + (i * 29) % 700
                at += latency
                self.events.append(self.records.event(
                    mail["id"], "sent", at, provider, "accepted", message_id=f"<{i}@{provider}>", latency_ms=latency,
                ))
                return
            detail = {"status": 503, "detail": "x"} | ({"cause": cause} if cause else {})
            self.events.append(self.records.event(mail["id"], "attempt_failed", at, provider, outcome, **detail))
        at += 5
        final = "dead_lettered" if script[-1][1] == "permanent" else "retry_scheduled"
        self.events.append(self.records.event(mail["id"], final, at))

    def of(self, mail_id: str) -> list[dict]:
        return sorted((e for e in self.events if e["mail"] == mail_id), key=lambda e: e["created_at"])

    def accepted_at(self) -> dict[str, int]:
        times: dict[str, int] = {m["id"]: m["created_at"] for m in self.mails}
        for e in self.events:
            if e["event"] == "accepted":
                times[e["mail"]] = min(times.get(e["mail"], e["created_at"]), e["created_at"])
        return times

    def durations(self, target: str, since_ms: int = 0, until_ms: int = 2**63) -> list[int]:
        result = []
        for mail, accepted in self.accepted_at().items():
            reached = [e["created_at"] for e in self.of(mail) if e["event"] == target]
            if reached and since_ms <= accepted < until_ms:
                result.append(min(reached) - accepted)
        return result


def quantile(values: list[float], level: float) -> float:
    """The value at rank floor(level * n) of the sorted values, as the questions define quantiles."""
    ordered = sorted(values)
    return ordered[min(int(level * len(ordered)), len(ordered) - 1)]


EMPTY = {"count": 0, "max_ms": None, "avg_ms": None, "p50_ms": None, "p95_ms": None, "p99_ms": None}


def assert_stats(stats: dict, values: list[float]) -> None:
    if not values:
        assert stats == EMPTY
        return
    assert stats["count"] == len(values)
    assert stats["max_ms"] == max(values)
    assert stats["avg_ms"] == pytest.approx(sum(values) / len(values), abs=0.01)
    for level, key in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
        assert stats[key] == quantile(values, level), key


@pytest.fixture
def history(client: Client, records: Records) -> History:
    history = History(records)
    for i in range(120):
        history.add_mail(i)
    rejected = records.new_id("rejected")
    history.events.append(records.event(rejected, "rejected", T0 + 5, reason="invalid recipient"))
    queued_only = records.mail(T0 + 200_000)
    history.mails.append(queued_only)
    writer = Writer(client, threading.Event())
    rows = {
        "mails": [mail_row(mail, 0, offset) for offset, mail in enumerate(history.mails)],
        "events": [event_row(event, 0, offset) for offset, event in enumerate(history.events)],
    }
    for _ in range(2):
        assert writer.write(rows)
    return history


def test_queue_and_delivery_times(client: Client, history: History) -> None:
    assert_stats(questions.queue_time_stats(client), history.durations("dispatched"))
    assert_stats(questions.delivery_time_stats(client), history.durations("sent"))
    since = T0 + 60_000
    assert_stats(questions.queue_time_stats(client, since_ms=since), history.durations("dispatched", since))
    assert_stats(questions.delivery_time_stats(client, since_ms=since), history.durations("sent", since))


def test_no_data_gives_empty_stats(client: Client, history: History) -> None:
    assert questions.delivery_time_stats(client, since_ms=T0 + 10**9) == EMPTY


def test_provider_stats(client: Client, history: History) -> None:
    attempts, sent, failed = Counter(), Counter(), Counter()
    latencies = defaultdict(list)
    for e in history.events:
        if e["event"] == "dispatched":
            attempts[e["provider"]] += 1
        elif e["event"] == "sent":
            sent[e["provider"]] += 1
            latencies[e["provider"]].append(orjson.loads(e["blob"])["latency_ms"])
        elif e["event"] == "attempt_failed":
            failed[e["provider"]] += 1
    result = {row["provider"]: row for row in questions.provider_stats(client)}
    assert set(result) == set(PROVIDERS)
    assert not sent["beta"], "the data set keeps one provider without a single sent mail"
    for provider in PROVIDERS:
        row = result[provider]
        assert (row["attempts"], row["sent"], row["failed"]) == (attempts[provider], sent[provider], failed[provider])
        assert row["success_rate"] == pytest.approx(sent[provider] / attempts[provider])
        assert row["failure_rate"] == pytest.approx(failed[provider] / attempts[provider])
        assert_stats(row["latency_ms"], latencies[provider])


def test_provider_timeline_adds_up_to_the_totals(client: Client, history: History) -> None:
    timeline = questions.provider_timeline(client, bucket_s=30)
    totals = {row["provider"]: row for row in questions.provider_stats(client)}
    for provider in PROVIDERS:
        rows = [row for row in timeline if row["provider"] == provider]
        assert all(row["bucket_start"] % 30_000 == 0 for row in rows)
        assert sum(row["attempts"] for row in rows) == totals[provider]["attempts"]
        assert sum(row["sent"] for row in rows) == totals[provider]["sent"]


def test_failure_causes(client: Client, history: History) -> None:
    expected = defaultdict(Counter)
    names = {("transient", "network"): "network", ("transient", "provider"): "provider_outage",
             ("transient", "rate_limit"): "rate_limit"}
    for e in history.events:
        if e["event"] != "attempt_failed":
            continue
        cause = orjson.loads(e["blob"]).get("cause")
        kind = names.get((e["outcome"], cause)) or (e["outcome"] if e["outcome"] != "transient" else "other")
        expected[e["provider"]][kind] += 1
        expected[e["provider"]]["total"] += 1
    result = {row.pop("provider"): row for row in questions.failure_causes(client)}
    assert set(result) == set(expected)
    for provider, counts in expected.items():
        assert {k: v for k, v in result[provider].items() if v} == dict(counts)


def test_unfinished_mails(client: Client, history: History) -> None:
    now = T0 + 1_000_000
    older_than_s = 600
    accepted = history.accepted_at()
    expected = sorted(
        mail for mail, at in accepted.items()
        if at <= now - older_than_s * 1000 and not any(e["event"] in TERMINAL for e in history.of(mail))
    )
    result = questions.unfinished_mails(client, older_than_s, now_ms=now)
    assert sorted(row["mail"] for row in result) == expected
    assert [row["accepted_at"] for row in result] == sorted(row["accepted_at"] for row in result)
    for row in result:
        events = history.of(row["mail"])
        assert row["accepted_at"] == accepted[row["mail"]]
        assert row["age_ms"] == now - accepted[row["mail"]]
        if events:
            assert (row["last_event"], row["last_event_at"]) == (events[-1]["event"], events[-1]["created_at"])
            assert row["attempts"] == sum(e["event"] == "dispatched" for e in events)
        else:
            assert (row["last_event"], row["last_provider"], row["attempts"]) == (None, None, 0)
    queued = [row for row in result if row["last_event"] is None]
    assert len(queued) == 1
    assert len(questions.unfinished_mails(client, older_than_s, now_ms=now, limit=3)) == 3


def test_mail_trace_tells_a_mails_story(client: Client, history: History) -> None:
    # Mail 4 runs script 4: provider failure on alpha, ambiguous on beta, sent by gamma.
    mail = next(m for m in history.mails if m["created_at"] == T0 + 4000)
    trace = questions.mail_trace(client, mail["id"])
    assert trace["mail"]["id"] == mail["id"] and trace["status"] == "sent"
    assert trace["accepted_at"] == T0 + 4000
    assert trace["providers_tried"] == ["alpha", "beta", "gamma"]
    assert [(f["provider"], f["outcome"]) for f in trace["failures"]] == [
        ("alpha", "provider_failure"), ("beta", "ambiguous"),
    ]
    assert trace["finished_at"] == max(e["created_at"] for e in history.of(mail["id"]))
    assert not trace["rejected"]
    assert [e["id"] for e in trace["events"]] == [e["id"] for e in history.of(mail["id"])]


def test_mail_trace_of_a_rejected_and_an_unknown_mail(client: Client, history: History) -> None:
    rejected = next(e for e in history.events if e["event"] == "rejected")
    trace = questions.mail_trace(client, rejected["mail"])
    assert trace["rejected"] and trace["mail"] is None and trace["status"] == "rejected"
    assert trace["finished_at"] == rejected["created_at"] and trace["accepted_at"] is None
    assert questions.mail_trace(client, "no-such-mail") is None


def test_windows_have_an_end(client: Client, history: History) -> None:
    since, until = T0 + 30_000, T0 + 90_000
    assert_stats(questions.queue_time_stats(client, since, until), history.durations("dispatched", since, until))
    assert_stats(questions.delivery_time_stats(client, since, until), history.durations("sent", since, until))
    in_window = [e for e in history.events if since <= e["created_at"] < until]
    attempts = Counter(e["provider"] for e in in_window if e["event"] == "dispatched")
    assert {row["provider"]: row["attempts"] for row in questions.provider_stats(client, since, until)} == attempts
    failed = Counter(e["provider"] for e in in_window if e["event"] == "attempt_failed")
    assert {row["provider"]: row["total"] for row in questions.failure_causes(client, since, until)} == failed
    assert questions.provider_stats(client, until, since) == []


def test_the_timeline_carries_each_buckets_send_latency(client: Client, history: History) -> None:
    latencies = defaultdict(list)
    for e in history.events:
        if e["event"] == "sent":
            latencies[(e["created_at"] // 30_000 * 30_000, e["provider"])].append(orjson.loads(e["blob"])["latency_ms"])
    rows = questions.provider_timeline(client, bucket_s=30)
    for row in rows:
        sends = latencies.get((row["bucket_start"], row["provider"]))
        if not sends:
            assert row["latency_p50_ms"] is None and row["latency_p95_ms"] is None
            continue
        assert (row["latency_p50_ms"], row["latency_p95_ms"]) == (quantile(sends, 0.5), quantile(sends, 0.95))
    assert any(row["latency_p50_ms"] is not None for row in rows)


def health_rows(changes: list[tuple]) -> list[tuple]:
    rows = []
    for offset, (provider, state, at, worker, fields) in enumerate(changes):
        record = {"opened_at_ms": 0, "probe_owner": "", "probe_until_ms": 0, "throttled_until_ms": 0,
                  "reason": "", **fields}
        rows.append(tuple({"provider": provider, "state": state, "worker": worker, "created_at_ms": at,
                           "kafka_partition": 0, "kafka_offset": offset, **record}[c] for c in HEALTH_COLUMNS))
    return rows


def test_breaker_states_now_and_their_changes_over_time(client: Client) -> None:
    later = questions.events.now_ms() + 60_000
    rows = health_rows([
        ("alpha", "open", T0 + 1000, "w1", {"opened_at_ms": T0 + 1000, "reason": "TransientError: 503"}),
        ("beta", "open", T0 + 2000, "w1", {"opened_at_ms": T0 + 2000, "reason": "ProviderFailure: 401"}),
        ("gamma", "throttled", T0 + 3000, "w2", {"throttled_until_ms": later}),
        ("alpha", "half_open", T0 + 5000, "w2", {"opened_at_ms": T0 + 1000, "probe_owner": "w2"}),
        ("alpha", "closed", T0 + 6000, "w2", {"opened_at_ms": T0 + 1000}),
    ])
    writer = Writer(client, threading.Event())
    for _ in range(2):
        assert writer.write({"provider_health": rows})

    answer = questions.breakers(client, T0 + 1500, T0 + 5500)

    assert answer["providers"] == [
        {"provider": "alpha", "state": "closed", "changed_at": T0 + 6000, "worker": "w2", "reason": None,
         "throttled_until": None},
        {"provider": "beta", "state": "open", "changed_at": T0 + 2000, "worker": "w1",
         "reason": "ProviderFailure: 401", "throttled_until": None},
        {"provider": "gamma", "state": "closed", "changed_at": None, "worker": None, "reason": None,
         "throttled_until": later},
    ]
    assert [(c["provider"], c["state"], c["changed_at"], c["worker"]) for c in answer["changes"]] == [
        ("beta", "open", T0 + 2000, "w1"), ("gamma", "throttled", T0 + 3000, "w2"),
        ("alpha", "half_open", T0 + 5000, "w2"),
    ]
    assert answer["changes"][2]["probe_owner"] == "w2"


def test_provider_feedback_joins_the_mail_by_message_id(client: Client, history: History) -> None:
    mail = next(m for m in history.mails if m["created_at"] == T0 + 4000)
    sent = next(e for e in history.of(mail["id"]) if e["event"] == "sent")
    message_id = orjson.loads(sent["blob"])["message_id"]
    other = "<0@alpha>"

    def feedback(serial: int, message: str, event: str, at: int, bounce: str = "") -> tuple:
        record = {"id": f"f{serial}", "provider": "gamma", "provider_event_id": f"ev{serial}", "message_id": message,
                  "event": event, "bounce": bounce, "recipient": "bob@example.com", "reason": "", "url": "",
                  "created_at_ms": at, "received_at_ms": at + 5, "created_by": "ingest/webhooks",
                  "kafka_partition": 0, "kafka_offset": serial}
        return tuple(record[c] for c in FEEDBACK_COLUMNS)

    rows = [feedback(2, message_id, "opened", T0 + 9000), feedback(1, message_id, "delivered", T0 + 8000),
            feedback(3, other, "bounced", T0 + 8500, bounce="hard"), feedback(4, other, "bounced", T0 + 8600, "soft")]
    writer = Writer(client, threading.Event())
    for _ in range(2):
        assert writer.write({"provider_feedback": rows})

    trace = questions.mail_trace(client, mail["id"])
    assert [(f["event"], f["created_at"], f["message_id"]) for f in trace["feedback"]] == [
        ("delivered", T0 + 8000, message_id), ("opened", T0 + 9000, message_id),
    ]
    assert questions.provider_feedback(client, T0, T0 + 10_000) == [{
        "provider": "gamma", "delivered": 1, "hard_bounces": 1, "soft_bounces": 1, "complained": 0, "opened": 1,
        "clicked": 0, "unsubscribed": 0,
    }]
    assert questions.provider_feedback(client, T0 + 8100, T0 + 8550)[0]["hard_bounces"] == 1
    rejected = next(e for e in history.events if e["event"] == "rejected")
    assert questions.mail_trace(client, rejected["mail"])["feedback"] == []


def test_rejections_count_each_field_refused_for_its_tenant_alone(client: Client, records: Records) -> None:
    since, until = T0 + 10_000, T0 + 20_000
    acme_mail, globex_mail = records.mail(T0, tenant="acme"), records.mail(T0, tenant="globex")

    def refused(at: int, tenant: str | None, field: str | None, reason: str, mail: str | None = None,
                **detail: object) -> dict:
        named = {"field": field} if field is not None else {}
        named |= {"tenant": tenant} if tenant is not None else {}
        return records.event(mail or records.new_id("refused"), "rejected", at, reason=reason, **named, **detail)

    body = orjson.dumps({"recipients": "nobody", "count": 99, "tenant": "globex"}).decode()
    events = [
        refused(since + 100, "acme", "recipients", "recipients: 'nobody' is not a valid address", body=body),
        refused(since + 900, "acme", "recipients", "recipients: at least one recipient is required", body="{}"),
        # A batch's mails: one field, whatever the position.
        refused(since + 200, "acme", "mails[0].recipients", "mails[0].recipients: is required", index=0, body="{}"),
        refused(since + 950, "acme", "mails[12].recipients", "mails[12].recipients: 'x' is not a valid address",
                index=12, body="{}"),
        refused(since + 300, "acme", "mails[3].attachments[1].filename", "mails[3].attachments[1].filename: bad",
                index=3, body="{}"),
        # Over-rate summaries stand for their count.
        refused(since + 400, "acme", "authorization", "over its request rate: 7", key="k1", count=7),
        refused(since + 800, "acme", "authorization", "over its request rate: 5", key="k1", count=5),
        # A reason that spells another tenant's name inside its text stays the tenant's own.
        refused(since + 500, "acme", "sender", 'sender: \'a", "tenant": "globex", "count": 50\' is not … ünï',
                body="{}"),
        # The dispatcher refusing a mail the gateway had accepted: no tenant in the blob, the mail is acme's.
        refused(since + 600, None, "Idempotency-Key", "Idempotency-Key: mail was already accepted", acme_mail["id"]),
        # A record the dispatcher could not read: nobody's but the operator's.
        refused(since + 700, None, None, "malformed record", topic="mail.requests", partition=0, offset=3),
        refused(since + 150, "globex", "subject", "subject: is required", body="{}"),
        refused(since + 250, "globex", "authorization", "over its request rate: 3", key="k2", count=3),
        refused(since + 260, None, "Idempotency-Key", "Idempotency-Key: mail was already accepted", globex_mail["id"]),
        # Outside the window, and not a rejection.
        refused(since - 1, "acme", "recipients", "before the window"),
        refused(until, "acme", "recipients", "at the window's end (excluded)"),
        records.event(acme_mail["id"], "accepted", since + 10, tenant="acme", field="recipients"),
    ]
    write_twice(client, [acme_mail, globex_mail], events)
    owners = {acme_mail["id"]: "acme", globex_mail["id"]: "globex"}

    def expected(tenant: str | None) -> dict:
        fields: dict = {}
        for event in sorted(events, key=lambda e: (e["created_at"], e["id"])):
            detail = orjson.loads(event["blob"])
            owner = detail.get("tenant") or owners.get(event["mail"])
            if event["event"] != "rejected" or not since <= event["created_at"] < until or tenant not in (None, owner):
                continue
            field = re.sub(r"\[[0-9]+\]", "[]", detail["field"]) if "field" in detail else None
            count = fields.get(field, {}).get("count", 0) + detail.get("count", 1)
            fields[field] = {"field": field, "count": count, "last_reason": detail["reason"],
                             "last_mail": event["mail"], "last_at": event["created_at"]}
        ordered = sorted(fields.values(), key=lambda row: (-row["count"], row["field"] or ""))
        return {"total": sum(row["count"] for row in ordered), "fields": ordered}

    acme = questions.rejections(client, since, until, tenant="acme")
    assert acme == expected("acme")
    assert [(row["field"], row["count"]) for row in acme["fields"]] == [
        ("authorization", 12), ("mails[].recipients", 2), ("recipients", 2), ("Idempotency-Key", 1),
        ("mails[].attachments[].filename", 1), ("sender", 1),
    ]
    assert acme["fields"][3]["last_mail"] == acme_mail["id"]
    assert acme["fields"][5]["last_reason"].endswith("is not … ünï")
    globex = questions.rejections(client, since, until, tenant="globex")
    assert globex == expected("globex") and globex["total"] == 5
    assert questions.rejections(client, since, until) == expected(None)
    assert questions.rejections(client, since, until, tenant="nobody") == {"total": 0, "fields": []}
    assert questions.rejections(client, until, until + 1, tenant="acme")["total"] == 1


def test_rejections_name_the_most_refused_fields_and_count_them_all(client: Client, records: Records) -> None:
    fields = questions.MAX_REJECTED_FIELDS + 5
    events = [records.event(records.new_id("refused"), "rejected", T0 + i, reason=f"field{i}: unknown", tenant="acme",
                            field=f"field{i}", **({"count": 2} if i % 2 else {})) for i in range(fields)]
    write_twice(client, [], events)
    answer = questions.rejections(client, T0, T0 + fields, tenant="acme")
    assert answer["total"] == fields + fields // 2
    assert len(answer["fields"]) == questions.MAX_REJECTED_FIELDS
    assert [row["count"] for row in answer["fields"]][fields // 2 - 1:fields // 2 + 1] == [2, 1]
