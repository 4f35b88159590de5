"""The REST API's reads, on rows written twice (as a re-delivery does): every mail and event once."""

import pytest
from clickhouse_driver import Client
from current_clickhouse import both_versions
from pipeline import Records, write_twice

from analytics.store import MailStore

pytestmark = both_versions

T0 = 1_750_000_000_000


@pytest.fixture
def stored(client: Client, records: Records) -> dict:
    mails = [records.mail(T0 + i * 1000) for i in range(5)]
    first, second = mails[0]["id"], mails[1]["id"]
    events = [
        records.event(first, "accepted", T0),
        # A fast provider: dispatched and sent in the same millisecond, appended in reverse order.
        records.event(first, "sent", T0 + 40, "mailgun", "accepted", message_id="<1@mg>", latency_ms=3),
        records.event(first, "dispatched", T0 + 40, "mailgun"),
        records.event(second, "accepted", T0 + 1000),
        records.event(second, "dispatched", T0 + 1010, "sendgrid"),
        records.event("rejected-only", "rejected", T0 + 7, reason="bad address"),
    ]
    write_twice(client, mails, events)
    return {"mails": mails, "events": events}


def test_list_is_newest_first_paged_and_counts_each_mail_once(client: Client, stored: dict) -> None:
    store = MailStore(client)
    page, total = store.list_mails(limit=2, offset=0)
    ids = [mail["id"] for mail in reversed(stored["mails"])]
    assert total == 5
    assert [mail["id"] for mail in page] == ids[:2]
    assert [mail["id"] for mail in store.list_mails(limit=10, offset=2)[0]] == ids[2:]
    assert store.list_mails(limit=10, offset=5) == ([], 5)


def test_a_mail_carries_its_latest_event_as_status(client: Client, stored: dict) -> None:
    store = MailStore(client)
    first, second, third = (mail["id"] for mail in stored["mails"][:3])
    stored_first = {k: v for k, v in stored["mails"][0].items() if k != "tenant"}
    assert store.get_mail(first) == {**stored_first, "status": "sent"}
    assert store.get_mail(second)["status"] == "dispatched"
    assert store.get_mail(third)["status"] == "queued"
    assert store.get_mail("no-such-mail") is None
    assert store.get_mail("rejected-only") is None


def test_events_in_life_order_once_each(client: Client, stored: dict) -> None:
    store = MailStore(client)
    first = stored["mails"][0]["id"]
    events = store.mail_events(first)
    assert [event["event"] for event in events] == ["accepted", "dispatched", "sent"]
    sent = stored["events"][1]
    assert events[2] == {
        "id": sent["id"], "mail": first, "event": "sent", "created_at": T0 + 40, "created_by": "test",
        "provider": "mailgun", "outcome": "accepted", "blob": sent["blob"],
    }
    assert events[0]["provider"] is None and events[0]["outcome"] is None
    assert [event["event"] for event in store.mail_events("rejected-only")] == ["rejected"]
    assert store.mail_events("no-such-mail") == []


def test_same_millisecond_failover_keeps_the_order_it_was_recorded_in(client: Client, records: Records) -> None:
    mail = records.mail(T0)
    # The ingest gateway's acceptance lands after the dispatcher's first events: acceptance still comes
    # first; the failure and the failover dispatch keep their partition order.
    events = [
        records.event(mail["id"], "dispatched", T0, "mailgun"),
        records.event(mail["id"], "attempt_failed", T0, "mailgun", "transient", cause="network"),
        records.event(mail["id"], "dispatched", T0, "sendgrid"),
        records.event(mail["id"], "accepted", T0),
    ]
    write_twice(client, [mail], events)
    store = MailStore(client)
    assert [(e["event"], e["provider"]) for e in store.mail_events(mail["id"])] == [
        ("accepted", None), ("dispatched", "mailgun"), ("attempt_failed", "mailgun"), ("dispatched", "sendgrid"),
    ]
    assert store.get_mail(mail["id"])["status"] == "dispatched"


def test_get_event_by_mail_and_id(client: Client, stored: dict) -> None:
    store = MailStore(client)
    event = stored["events"][4]
    assert store.get_event(event["mail"], event["id"])["provider"] == "sendgrid"
    assert store.get_event(stored["mails"][0]["id"], event["id"]) is None


def test_negative_paging_is_refused(client: Client) -> None:
    with pytest.raises(ValueError):
        MailStore(client).list_mails(limit=-1, offset=0)
