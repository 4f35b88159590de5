"""Tenant isolation in every read: a tenant sees exactly what it would see if its mails were the only ones
stored (each answer is first taken over a database holding that tenant's rows alone, then again with every
tenant's rows present), another tenant's mail looks missing, and no tenant (None) sees them all."""
from collections import Counter

import pytest
from clickhouse_driver import Client
from current_clickhouse import both_versions
from pipeline import Records, write_twice

from analytics import questions
from analytics.store import MailStore

pytestmark = both_versions

T0 = 1_750_000_000_000
DAY_MS = 86_400_000
NOW = T0 + 1_000_000
WINDOW = (T0 + 5_000, T0 + 20_000)
# (provider, outcome, cause) per attempt; "accepted" is a send; a script ending in failure stays unfinished.
SCRIPTS = [
    [("alpha", "accepted", None)],
    [("beta", "transient", "network"), ("alpha", "accepted", None)],
    [("gamma", "permanent", None)],
    [("beta", "transient", "rate_limit")],
    [("alpha", "provider_failure", None), ("gamma", "accepted", None)],
]
SIZES = {"acme": 9, "globex": 13, "default": 4}


class Tenancy:
    """Each tenant's mails and events, interleaved in time, plus per tenant one mail accepted forty days
    before the rest whose retry is sent inside WINDOW and one from a producer that left created_at 0 (its
    `accepted` event bears the time the dispatcher read it), and events of mails no tenant has a row for."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.mails: dict[str, list[dict]] = {}
        self.events: dict[str, list[dict]] = {}
        for slot, (tenant, size) in enumerate(SIZES.items()):
            self.mails[tenant], self.events[tenant] = [], []
            for i in range(size):
                self._add(tenant, T0 + (i * len(SIZES) + slot) * 1000, SCRIPTS[(i + slot) % len(SCRIPTS)])
            self._add_old_retried(tenant, WINDOW[0] + 500 + slot * 100)
            self._add_unstamped(tenant, WINDOW[0] + 700 + slot * 100)
        rejected = records.event(records.new_id("rejected"), "rejected", T0 + 7000, reason="bad address")
        unstored = records.event(records.new_id("unstored"), "accepted", T0 + 8000)
        self.orphans = [rejected, unstored]

    def _add(self, tenant: str, at: int, script: list[tuple]) -> None:
        mail = self.records.mail(at, tenant=tenant)
        self.mails[tenant].append(mail)
        events = self.events[tenant]
        events.append(self.records.event(mail["id"], "accepted", at))
        for provider, outcome, cause in script:
            at += 40
            events.append(self.records.event(mail["id"], "dispatched", at, provider))
            at += 30 + len(events) * 7 % 300
            if outcome == "accepted":
                events.append(self.records.event(mail["id"], "sent", at, provider, "accepted",
                                                 message_id=f"<{mail['id']}>", latency_ms=at % 500))
                return
            detail = {"status": 503} | ({"cause": cause} if cause else {})
            events.append(self.records.event(mail["id"], "attempt_failed", at, provider, outcome, **detail))
        if script[-1][1] == "permanent":
            events.append(self.records.event(mail["id"], "dead_lettered", at + 5))

    def _add_old_retried(self, tenant: str, retried_at: int) -> None:
        accepted = T0 - 40 * DAY_MS
        mail = self.records.mail(accepted, tenant=tenant)
        self.mails[tenant].append(mail)
        self.events[tenant] += [
            self.records.event(mail["id"], "accepted", accepted),
            self.records.event(mail["id"], "dispatched", accepted + 10, "beta"),
            self.records.event(mail["id"], "attempt_failed", accepted + 20, "beta", "transient", cause="network"),
            self.records.event(mail["id"], "retry_scheduled", accepted + 30),
            self.records.event(mail["id"], "dispatched", retried_at, "alpha"),
            self.records.event(mail["id"], "sent", retried_at + 50, "alpha", "accepted", latency_ms=50),
        ]

    def _add_unstamped(self, tenant: str, read_at: int) -> None:
        mail = self.records.mail(0, tenant=tenant)
        self.mails[tenant].append(mail)
        self.events[tenant] += [
            self.records.event(mail["id"], "accepted", read_at),
            self.records.event(mail["id"], "dispatched", read_at + 10, "gamma"),
            self.records.event(mail["id"], "sent", read_at + 40, "gamma", "accepted", latency_ms=30),
        ]

    def write(self, client: Client, tenants: list[str], orphans: bool = False) -> None:
        """Rows as the sink makes them, written twice, as a re-delivery does."""
        mails = [m for t in tenants for m in self.mails[t]]
        events = [e for t in tenants for e in self.events[t]] + (self.orphans if orphans else [])
        write_twice(client, mails, events)

    def ids(self, tenant: str) -> list[str]:
        return [mail["id"] for mail in self.mails[tenant]]


def answers(client: Client, tenancy: Tenancy, tenant: str | None, ids: list[str]) -> dict:
    """Every question and read that answers about mails or events, for `tenant`."""
    result: dict = {}
    for name, (since, until) in (("all", (None, None)), ("window", WINDOW)):
        result[name] = {
            "providers": questions.provider_stats(client, since, until, tenant=tenant),
            "timeline": questions.provider_timeline(client, 30, since, until, tenant=tenant),
            "queue": questions.queue_time_stats(client, since, until, tenant=tenant),
            "delivery": questions.delivery_time_stats(client, since, until, tenant=tenant),
            "failures": questions.failure_causes(client, since, until, tenant=tenant),
            "unfinished": questions.unfinished_mails(client, 60, now_ms=NOW, since_ms=since, tenant=tenant),
            "rejections": questions.rejections(client, since, until, tenant=tenant),
        }
    store = MailStore(client)
    result["pages"] = [store.list_mails(4, offset, tenant=tenant) for offset in (0, 4, 12)]
    result["mails"] = {mail_id: {
        "trace": questions.mail_trace(client, mail_id, tenant=tenant),
        "mail": store.get_mail(mail_id, tenant=tenant),
        "events": store.mail_events(mail_id, tenant=tenant),
        "accepted": store.accepted_details([mail_id], tenant=tenant).get(mail_id),
    } for mail_id in ids}
    return result


@pytest.fixture
def tenancy(records: Records) -> Tenancy:
    return Tenancy(records)


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_a_tenant_sees_what_it_would_see_alone(client: Client, tenancy: Tenancy, tenant: str) -> None:
    tenancy.write(client, [tenant])
    alone = answers(client, tenancy, None, tenancy.ids(tenant))
    assert alone["window"]["providers"], "the window holds the tenant's attempts"

    tenancy.write(client, [t for t in SIZES if t != tenant], orphans=True)

    assert answers(client, tenancy, tenant, tenancy.ids(tenant)) == alone


def test_another_tenants_mail_looks_missing(client: Client, tenancy: Tenancy) -> None:
    tenancy.write(client, list(SIZES), orphans=True)
    store = MailStore(client)
    for reader, owner in (("acme", "globex"), ("globex", "acme"), ("nobody", "acme")):
        for mail_id in tenancy.ids(owner):
            event = next(e for e in tenancy.events[owner] if e["mail"] == mail_id)
            assert store.get_mail(mail_id, tenant=reader) is None
            assert store.mail_events(mail_id, tenant=reader) == []
            assert store.get_event(mail_id, event["id"], tenant=reader) is None
            assert store.accepted_details([mail_id], tenant=reader) == {}
            assert questions.mail_trace(client, mail_id, tenant=reader) is None
            assert store.get_event(mail_id, event["id"])["mail"] == mail_id
    for orphan in tenancy.orphans:
        assert questions.mail_trace(client, orphan["mail"], tenant="acme") is None
        assert questions.mail_trace(client, orphan["mail"]) is not None
    assert store.list_mails(100, 0, tenant="nobody") == ([], 0)
    assert questions.provider_stats(client, tenant="nobody") == []


def test_no_tenant_sees_every_tenant(client: Client, tenancy: Tenancy) -> None:
    tenancy.write(client, list(SIZES), orphans=True)
    store = MailStore(client)
    page, total = store.list_mails(100, 0)
    assert total == sum(len(mails) for mails in tenancy.mails.values()) == len(page)
    for tenant in SIZES:
        own, own_total = store.list_mails(100, 0, tenant=tenant)
        assert own_total == len(tenancy.mails[tenant]) and {m["id"] for m in own} == set(tenancy.ids(tenant))
    for since, until in ((None, None), WINDOW):
        every = {row["provider"]: row["attempts"] for row in questions.provider_stats(client, since, until)}
        summed = Counter()
        for tenant in SIZES:
            summed.update({row["provider"]: row["attempts"]
                           for row in questions.provider_stats(client, since, until, tenant=tenant)})
        assert every == dict(summed)
        failed = sum(row["total"] for row in questions.failure_causes(client, since, until))
        assert failed == sum(row["total"] for tenant in SIZES
                             for row in questions.failure_causes(client, since, until, tenant=tenant))
    delivered = sum(questions.delivery_time_stats(client, tenant=tenant)["count"] for tenant in SIZES)
    assert questions.delivery_time_stats(client)["count"] == delivered


def test_a_mail_accepted_long_before_the_window_counts_for_its_tenant(client: Client, tenancy: Tenancy) -> None:
    tenancy.write(client, list(SIZES))
    for tenant in ("acme", "globex"):
        sends = {row["provider"]: row["sent"] for row in questions.provider_stats(client, *WINDOW, tenant=tenant)}
        in_window = [e for e in tenancy.events[tenant]
                     if e["event"] == "sent" and WINDOW[0] <= e["created_at"] < WINDOW[1]]
        assert sum(sends.values()) == len(in_window)
        old = tenancy.mails[tenant][-2]
        assert any(e["mail"] == old["id"] for e in in_window), "the old mail's retry was sent in the window"
        assert [e["event"] for e in questions.mail_trace(client, old["id"], tenant=tenant)["events"]][-1] == "sent"


def test_a_mail_whose_producer_left_created_at_0_counts_when_it_was_read(client: Client, tenancy: Tenancy) -> None:
    tenancy.write(client, list(SIZES))
    for tenant in ("acme", "globex"):
        unstamped = tenancy.mails[tenant][-1]
        read_at = next(e["created_at"] for e in tenancy.events[tenant] if e["mail"] == unstamped["id"])
        alone = questions.queue_time_stats(client, read_at, read_at + 1, tenant=tenant)
        assert (alone["count"], alone["max_ms"]) == (1, 10)


def test_a_request_rejected_at_the_gateway_is_its_tenants_alone(client: Client, records: Records) -> None:
    """It never became a mail, so its `rejected` event names the tenant; a pipeline rejection names none."""
    rejected = records.event("refused-1", "rejected", T0, reason="sender: not an address", tenant="acme")
    unowned = records.event("refused-2", "rejected", T0, reason="malformed record")
    write_twice(client, [], [rejected, unowned])
    store = MailStore(client)
    assert [e["id"] for e in store.mail_events("refused-1", tenant="acme")] == [rejected["id"]]
    assert store.mail_events("refused-1", tenant="globex") == []
    assert questions.mail_trace(client, "refused-1", tenant="acme")["rejected"] is True
    assert questions.mail_trace(client, "refused-1", tenant="globex") is None
    assert store.mail_events("refused-2", tenant="acme") == [] and len(store.mail_events("refused-2")) == 1
