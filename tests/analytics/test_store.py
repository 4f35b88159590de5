"""The REST API's reads, on rows written twice (as a re-delivery does): every mail and event once."""

import threading

import pytest
from clickhouse_driver import Client
from current_clickhouse import both_versions
from pipeline import Records, write_twice

from analytics import questions
from analytics.rows import FEEDBACK_COLUMNS
from analytics.store import MailStore
from analytics.writer import Writer

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


# Providers' reports ----------------------------------------------------------------------------------------------

class Feedback:
    """provider_feedback rows, as the sink writes them from the providers' webhooks."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.rows: list[tuple] = []

    def add(self, message_id: str, event: str, at: int, recipient: str = "bob@example.com", bounce: str = "") -> None:
        serial = len(self.rows)
        record = {"id": self.records.new_id("feedback"), "provider": "mailgun",
                  "provider_event_id": self.records.new_id("provider-event"), "message_id": message_id,
                  "event": event, "bounce": bounce, "recipient": recipient, "reason": "", "url": "",
                  "created_at_ms": at, "received_at_ms": at + 5, "created_by": "ingest/webhooks",
                  "kafka_partition": 0, "kafka_offset": serial}
        self.rows.append(tuple(record[column] for column in FEEDBACK_COLUMNS))

    def write_twice(self, client: Client) -> None:
        writer = Writer(client, threading.Event())
        for _ in range(2):
            assert writer.write({"provider_feedback": self.rows})


class Counting:
    """A client that counts the queries run through it."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.queries = 0

    def execute(self, *args: object, **kwargs: object) -> object:
        self.queries += 1
        return self.client.execute(*args, **kwargs)


# The status each mail must read, and what its providers reported (message id -> reports), newest mail last.
REPORTED = {
    "not reported on": ("sent", None),
    "delivered, opened and clicked": ("delivered", None),
    "opened without a delivery report": ("delivered", None),
    "unsubscribed": ("delivered", None),
    "bounced after a delivery report": ("bounced", "hard"),
    "soft bounce, then delivered": ("delivered", None),
    "delivered reported before the soft bounce it settles": ("delivered", None),
    "one recipient delivered, one soft bounced": ("bounced", "soft"),
    "one hard bounce, one soft": ("bounced", "hard"),
    "complained beside a hard bounce": ("complained", None),
    "soft bounced on the first send, delivered on the replay": ("delivered", None),
    "a duplicate's report": ("bounced", "hard"),
    "a report on a message id no send named": ("dispatched", None),
}


@pytest.fixture
def reported(client: Client, records: Records) -> dict[str, str]:
    """One mail per REPORTED case, each sent (but the last) with its own message id; returns the mail ids."""
    mails, events, feedback = {}, [], Feedback(records)
    for i, case in enumerate(REPORTED):
        at = T0 + i * 1000
        mail = mails[case] = records.mail(at)
        events.append(records.event(mail["id"], "accepted", at))
        events.append(records.event(mail["id"], "dispatched", at + 10, "mailgun"))
        if case != "a report on a message id no send named":
            events.append(records.event(mail["id"], "sent", at + 20, "mailgun", "accepted",
                                        message_id=f"<{i}@mg>", latency_ms=5))
    later = T0 + 60_000

    def report(case: str, event: str, at: int = later, **fields: str) -> None:
        feedback.add(f"<{list(REPORTED).index(case)}@mg>", event, at, **fields)

    for event in ("delivered", "opened", "clicked"):
        report("delivered, opened and clicked", event)
    report("opened without a delivery report", "opened")
    report("unsubscribed", "delivered")
    report("unsubscribed", "unsubscribed", later + 1)
    report("bounced after a delivery report", "delivered")
    report("bounced after a delivery report", "bounced", later + 500, bounce="hard")
    # One recipient, spelt in two cases by the provider.
    report("soft bounce, then delivered", "bounced", recipient="Bob@Example.com", bounce="soft")
    report("soft bounce, then delivered", "delivered", later + 500)
    report("delivered reported before the soft bounce it settles", "bounced", later + 500, bounce="soft")
    report("delivered reported before the soft bounce it settles", "delivered")
    report("one recipient delivered, one soft bounced", "delivered")
    report("one recipient delivered, one soft bounced", "bounced", recipient="carol@example.com", bounce="soft")
    report("one hard bounce, one soft", "bounced", bounce="soft")
    report("one hard bounce, one soft", "bounced", recipient="carol@example.com", bounce="hard")
    report("complained beside a hard bounce", "delivered")
    report("complained beside a hard bounce", "complained", later + 900)
    report("complained beside a hard bounce", "bounced", recipient="carol@example.com", bounce="hard")

    replayed = mails["soft bounced on the first send, delivered on the replay"]["id"]
    report("soft bounced on the first send, delivered on the replay", "bounced", bounce="soft")
    events.append(records.event(replayed, "sent", later + 2000, "sendgrid", "accepted", message_id="<replay@sg>"))
    feedback.add("<replay@sg>", "delivered", later + 3000)

    duplicated = mails["a duplicate's report"]["id"]
    events.append(records.event(duplicated, "duplicate", later, message_id="<duplicate@mg>"))
    feedback.add("<duplicate@mg>", "bounced", later + 100, bounce="hard")

    # A pipeline event that is no send, naming another mail's message: its reports are not this mail's.
    unsent = mails["a report on a message id no send named"]["id"]
    bounced = list(REPORTED).index("bounced after a delivery report")
    events.append(records.event(unsent, "dispatched", later, "mailgun", message_id=f"<{bounced}@mg>"))
    events.append(records.event(unsent, "dispatched", later + 1, "mailgun", message_id="<no-send@mg>"))
    feedback.add("<no-send@mg>", "complained", later + 100)

    write_twice(client, list(mails.values()), events)
    feedback.write_twice(client)
    return {case: mail["id"] for case, mail in mails.items()}


def shown(mail: dict) -> tuple[str, str | None]:
    return mail["status"], mail.get("bounce")


def test_a_sent_mail_reads_what_its_providers_reported(client: Client, reported: dict[str, str]) -> None:
    store = MailStore(client)
    assert {case: shown(store.get_mail(mail_id)) for case, mail_id in reported.items()} == REPORTED
    assert "bounce" not in store.get_mail(reported["delivered, opened and clicked"])


def test_a_page_reads_its_mails_reports_at_a_cost_that_does_not_grow_with_the_page(
        client: Client, reported: dict[str, str]) -> None:
    cases = {mail_id: case for case, mail_id in reported.items()}
    costs = {}
    for per_page in (2, len(REPORTED)):
        counting = Counting(client)
        page, total = MailStore(counting).list_mails(limit=per_page, offset=0)
        assert total == len(REPORTED) and len(page) == per_page
        assert {cases[m["id"]]: shown(m) for m in page} == {cases[m["id"]]: REPORTED[cases[m["id"]]] for m in page}
        costs[per_page] = counting.queries
    assert costs[2] == costs[len(REPORTED)], costs


def test_the_trace_reads_the_status_the_mail_does(client: Client, reported: dict[str, str]) -> None:
    for case, mail_id in reported.items():
        trace = questions.mail_trace(client, mail_id)
        assert (trace["status"], trace["bounce"]) == REPORTED[case], case
        assert trace["mail"]["status"] == trace["status"]


# Refused requests ------------------------------------------------------------------------------------------------

def test_a_refused_request_is_read_by_its_id_for_its_tenant_alone(client: Client, records: Records) -> None:
    refused, summary, dispatcher = records.new_id("refused"), records.new_id("summary"), records.new_id("refusal")
    accepted = records.mail(T0, tenant="acme")
    events = [
        records.event(refused, "rejected", T0 + 7, reason="recipients: 'x' is not a valid address",
                      field="recipients", tenant="acme", body='{"recipients": "x"}'),
        # An over-rate summary names no mail of its own.
        records.event(summary, "rejected", T0 + 8, reason="over its rate", field="authorization", tenant="acme",
                      count=3),
        # The dispatcher's refusal of an outside producer's record: no field, no tenant named.
        records.event(dispatcher, "rejected", T0 + 9, reason="id: must start with 'acme:'"),
        records.event(dispatcher, "dead_lettered", T0 + 9, outcome="malformed", reason="id: must start with 'acme:'"),
        records.event(accepted["id"], "accepted", T0),
    ]
    write_twice(client, [accepted], events)
    store = MailStore(client)

    expected = {"id": refused, "status": "rejected", "reason": "recipients: 'x' is not a valid address",
                "field": "recipients", "created_at": T0 + 7}
    assert store.get_rejection(refused, tenant="acme") == expected
    assert store.get_rejection(refused) == expected
    assert store.get_rejection(refused, tenant="globex") is None
    assert store.get_rejection(summary, tenant="acme")["field"] == "authorization"
    assert store.get_rejection(dispatcher) == {"id": dispatcher, "status": "rejected",
                                               "reason": "id: must start with 'acme:'", "field": None,
                                               "created_at": T0 + 9}
    assert store.get_rejection(dispatcher, tenant="acme") is None
    assert store.get_rejection(accepted["id"], tenant="acme") is None
    assert store.get_rejection("no-such-id") is None
    assert store.get_mail(refused, tenant="acme") is None, "a refused request is no mail"
