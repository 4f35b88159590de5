"""Mail ids are unique per tenant by construction: the rule in check_mail (shared by the gateway and the
dispatcher), the ids the gateway makes (which keep passing it for every tenant), and where a record breaking it
ends: a dead letter filed under its place on the topic, never a stored mail, never a replay."""
import asyncio
import uuid

import orjson
import pytest

from analytics.rows import UnusableRecord, to_row
from dispatcher.dead_letters import Letter, NotReplayable
from dispatcher.delivery import Dispatcher
from dispatcher.jobs import RETRY_SCHEMA, Source
from ingest.mails.idempotency import legacy_mail_id_for, mail_id_for
from ingest.mails.request_body import mail_from_body, new_id
from schemas import codec, registry, topics
from schemas.model import DEFAULT_TENANT, Mail
from schemas.validation import ForeignMailId, check_mail, check_mail_id

RULE = "mail ids are unique per tenant"
TENANTS = [DEFAULT_TENANT, "acme", "0", "a" * 64, "acme-eu_2"]


def outside(mail_id: str, tenant: str = "acme", origin: str = "kafka") -> dict:
    return {"id": mail_id, "sender": "shop@example.com", "recipients": ["bob@example.com"], "subject": "Your order",
            "content": "It ships today.", "created_at": 1_700_000_000_000, "origin": origin, "tenant": tenant}


@pytest.mark.parametrize("mail_id, tenant, origin", [
    ("order-4711", DEFAULT_TENANT, "kafka"),  # the default tenant's ids carry no prefix
    ("default:order-4711", DEFAULT_TENANT, "kafka"),  # or its own
    ("acme:order-4711", "acme", "kafka"),
    ("acme:2024:order:4711", "acme", "kafka"),  # only the first ':' separates the prefix
    ("acme-eu_2:x", "acme-eu_2", "kafka"),
    ("urn:x", "urn", ""),  # an origin left empty is an outside producer's too
    ("Order:4711", DEFAULT_TENANT, "kafka"),  # 'Order' cannot be a tenant, so it is nobody's prefix
    ("shop.example:4711", DEFAULT_TENANT, "kafka"),
    (":4711", DEFAULT_TENANT, "kafka"),
    # The gateway's ids from before they carried their tenant: still on the retry ladder or waiting to be sent.
    ("0123456789abcdef0123456789abcdef", "acme", "http"),
])
def test_an_id_of_its_own_tenant_passes(mail_id, tenant, origin):
    check_mail_id(mail_id, tenant, origin)
    assert check_mail(Mail.from_record(outside(mail_id, tenant, origin))).id == mail_id


@pytest.mark.parametrize("mail_id, tenant, origin, expected", [
    ("order-4711", "acme", "kafka", "must begin with 'acme:'"),
    ("ACME:order-4711", "acme", "kafka", "must begin with 'acme:'"),
    ("acme-order-4711", "acme", "kafka", "must begin with 'acme:'"),
    ("default:order-4711", "acme", "kafka", "prefix of tenant 'default'; use 'acme:'"),
    ("globex:order-4711", "acme", "kafka", "prefix of tenant 'globex'; use 'acme:'"),
    ("acme:order-4711", DEFAULT_TENANT, "kafka", "prefix of tenant 'acme', which no 'default' tenant's mail takes"),
    ("acme:order-4711", "globex", "http", "prefix of tenant 'acme'; use 'globex:'"),  # whatever the origin
    # A producer writing origin "http" gets no exemption beyond the old gateway ids' shape.
    ("order-4711", "acme", "http", "must begin with 'acme:'"),
    ("0123456789ABCDEF0123456789ABCDEF", "acme", "http", "must begin with 'acme:'"),
])
def test_an_id_outside_its_tenants_own_is_refused_naming_the_rule_and_the_prefix(mail_id, tenant, origin, expected):
    with pytest.raises(ForeignMailId) as caught:
        check_mail(Mail.from_record(outside(mail_id, tenant, origin)))
    assert caught.value.field == "id"
    assert str(caught.value).startswith(f"id: {mail_id!r}") and expected in str(caught.value)
    assert RULE in str(caught.value)


@pytest.mark.parametrize("tenant", TENANTS)
def test_the_ids_the_gateway_makes_are_among_their_tenants_own(tenant):
    """Random ids and Idempotency-Key ids are 32 hex characters, behind the tenant's prefix for any tenant but the
    default one: no other tenant's mail, from the gateway or a producer, can take them."""
    body = orjson.dumps({"sender": "alice@example.com", "recipients": "bob@example.com", "subject": "s",
                         "content": "c"})
    prefix = "" if tenant == DEFAULT_TENANT else f"{tenant}:"
    for mail_id in (new_id(tenant), mail_id_for("order-4711", tenant), mail_id_for("acme:order-4711", tenant)):
        assert mail_id.startswith(prefix) and len(mail_id) == len(prefix) + 32
        mail = mail_from_body(body, mail_id, tenant)
        assert mail.origin == "http" and check_mail(mail).id == mail_id
        for other in TENANTS:
            if other != tenant:
                with pytest.raises(ForeignMailId):
                    check_mail_id(mail_id, other, "kafka")


def test_a_key_keeps_the_id_it_stood_for_before_ids_carried_their_tenant():
    assert mail_id_for("order-4711", "acme") == f"acme:{legacy_mail_id_for('order-4711', 'acme')}"
    assert mail_id_for("order-4711") == legacy_mail_id_for("order-4711", DEFAULT_TENANT)


def letters_and_events(outputs) -> tuple[list[dict], list[dict]]:
    decoded = [(o.topic, o.key, codec.decode(o.value)[1]) for o in outputs]
    assert {topic for topic, _, _ in decoded} == {topics.DEAD, topics.EVENTS}, "only a letter and events"
    return ([r for t, _, r in decoded if t == topics.DEAD],
            [r | {"key": k} for t, k, r in decoded if t == topics.EVENTS])


@pytest.mark.parametrize("source", [Source(topics.REQUESTS, 2, 17, 0), Source(topics.retry_topic(0), 1, 5, 0)])
def test_a_refused_id_is_dead_lettered_under_the_records_place_not_under_the_id(source):
    """Before any provider, breaker or ledger: nothing of it may land on the mail the id names (another tenant's,
    maybe). A mail already on the retry ladder under such an id is refused the same way."""
    record = outside("order-4711")
    payload = codec.encode(registry.MAIL_REQUEST, record)
    if source.topic != topics.REQUESTS:
        payload = codec.encode(RETRY_SCHEMA, {"mail": record, "level": 0, "due_at": 0, "excluded": [],
                                              "last_error": "503"})
    dispatcher = Dispatcher([], None, None, None, None, (1.0,), True, "test-worker")
    outputs = asyncio.run(dispatcher.handle(payload, b"order-4711", source))
    [letter], events = letters_and_events(outputs)
    place = f"{source.topic}:{source.partition}:{source.offset}"
    assert letter["mail_id"] == place and letter["outcome"] == "malformed"
    assert letter["reason"].startswith("id: 'order-4711' must begin with 'acme:'") and RULE in letter["reason"]
    assert (letter["payload"], letter["source_topic"], letter["source_offset"]) == (payload, source.topic,
                                                                                    source.offset)
    assert [(e["event"], e["mail"], e["key"]) for e in events] == [
        ("rejected", place, place), ("dead_lettered", place, place)]
    # The rejection names its tenant: that tenant alone reads it (analytics.tenants), no stored mail needed.
    assert orjson.loads(events[0]["blob"])["tenant"] == "acme"


def test_another_invalid_record_is_still_filed_under_its_own_id():
    record = {**outside("acme:order-4711"), "recipients": ["not an address"]}
    dispatcher = Dispatcher([], None, None, None, None, (1.0,), True, "test-worker")
    outputs = asyncio.run(dispatcher.handle(codec.encode(registry.MAIL_REQUEST, record), b"acme:order-4711",
                                            Source(topics.REQUESTS, 0, 3, 0)))
    [letter], events = letters_and_events(outputs)
    assert letter["mail_id"] == "acme:order-4711" and letter["reason"].startswith("recipients:")
    assert {e["mail"] for e in events} == {"acme:order-4711"} and "tenant" not in orjson.loads(events[0]["blob"])


def test_the_sink_stores_no_mail_under_an_id_that_is_not_its_tenants():
    """Stored, the refused record would make the id's events (another tenant's mail) this tenant's to read."""
    with pytest.raises(UnusableRecord, match="must begin with 'acme:'"):
        to_row(topics.REQUESTS, 0, 1, codec.encode(registry.MAIL_REQUEST, outside("order-4711")))
    table, row = to_row(topics.REQUESTS, 0, 2, codec.encode(registry.MAIL_REQUEST, outside("acme:order-4711")))
    assert table == "mails" and (row[0], row[-1]) == ("acme:order-4711", "acme")
    _, row = to_row(topics.REQUESTS, 0, 3, codec.encode(registry.MAIL_REQUEST, outside(uuid.uuid4().hex,
                                                                                       origin="http")))
    assert row[-1] == "acme"


def test_a_letter_under_a_refused_id_is_not_replayed():
    """Put back as it is it would be refused again, and its `replayed` event would join the mail the id names."""
    def letter(record: dict) -> Letter:
        return Letter(mail_id="mail.requests:0:1", reason="id: ...", outcome="malformed", source_topic=topics.REQUESTS,
                      source_partition=0, source_offset=1, payload=codec.encode(registry.MAIL_REQUEST, record),
                      dead_at=1, partition=0, offset=0)

    refused = letter(outside("order-4711"))
    assert not refused.replayable()
    with pytest.raises(NotReplayable, match="must begin with 'acme:'.*under its tenant's prefix"):
        refused.mail_record()
    assert letter(outside("acme:order-4711")).mail_record()["id"] == "acme:order-4711"
