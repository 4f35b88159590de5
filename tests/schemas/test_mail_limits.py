"""Every message-content limit and every header-injection case, through the JSON body the gateway parses and
through check_mail alone (what the dispatcher runs on an outside producer's record): each names its field."""
import asyncio
import base64
from dataclasses import replace

import orjson
import pytest

from dispatcher.delivery import Dispatcher
from dispatcher.jobs import MAX_REASON_CHARS, Job, Source
from ingest.mails.request_body import mail_from_body
from schemas import codec, registry, topics, validation
from schemas.model import DEFAULT_TENANT, Attachment, Mail
from schemas.validation import InvalidMail, check_mail, own_mail_id

# Kafka's default record limit, and what a record's key, headers and batch framing take of it.
KAFKA_RECORD_BYTES = 1_000_000
RECORD_FRAMING = 500

GOOD = {"sender": "alice@example.com", "recipients": "bob@example.com", "subject": "s", "content": "c"}
PDF = base64.b64encode(b"%PDF-1.4 tiny").decode()


def attachment(**fields: str) -> dict:
    return {"filename": "report.pdf", "content_type": "application/pdf", "content": PDF, **fields}


def addresses(count: int, domain: str = "example.com") -> list[str]:
    return [f"r{i}@{domain}" for i in range(count)]


FULL = {
    **GOOD,
    "html": "<p>c</p>",
    "cc": "carol@example.com, dave@example.com",
    "bcc": ["eve@example.com"],
    "reply_to": "support@example.com",
    "headers": {"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@example.com>"},
    "attachments": [attachment(), attachment(filename="notes.txt", content_type="text/plain",
                                             content=base64.b64encode(b"hello").decode())],
    "tags": ["welcome", "spring-2024"],
    "metadata": {"customer": "42", "plan": "pro"},
}


def parse(body: dict) -> Mail:
    return mail_from_body(orjson.dumps(body), "m1")


def refused_field(body: dict) -> str:
    with pytest.raises(InvalidMail) as caught:
        parse(body)
    return caught.value.field


def test_a_full_body_becomes_a_full_mail():
    mail = parse(FULL)
    assert (mail.html, mail.cc, mail.bcc, mail.reply_to) == (
        "<p>c</p>", ("carol@example.com", "dave@example.com"), ("eve@example.com",), "support@example.com")
    assert mail.headers == FULL["headers"] and mail.metadata == FULL["metadata"]
    assert mail.tags == ("welcome", "spring-2024")
    assert mail.attachments == (Attachment("report.pdf", "application/pdf", b"%PDF-1.4 tiny"),
                                Attachment("notes.txt", "text/plain", b"hello"))


def test_the_seed_body_still_works_and_html_alone_is_enough():
    assert parse(GOOD).content == "c" and parse(GOOD).attachments == ()
    html_only = {k: v for k, v in GOOD.items() if k != "content"} | {"html": "<b>hi</b>"}
    assert parse(html_only).html == "<b>hi</b>" and parse(html_only).content == ""


def test_limits_default_to_the_documented_values():
    assert (validation.MAX_RECIPIENTS, validation.MAX_BODY_CHARS, validation.MAX_ATTACHMENT_BYTES) == (
        50, 1_000_000, 10 * 1024 * 1024)


@pytest.mark.parametrize("body, field", [
    # Shape of the new fields.
    ({**GOOD, "content": None}, "content"),
    ({**GOOD, "content": "", "html": ""}, "content"),
    ({**GOOD, "html": 5}, "html"),
    ({**GOOD, "cc": [1]}, "cc"),
    ({**GOOD, "bcc": {"a": "b"}}, "bcc"),
    ({**GOOD, "reply_to": ["a@example.com"]}, "reply_to"),
    ({**GOOD, "headers": ["X-A: b"]}, "headers"),
    ({**GOOD, "headers": {"X-A": 1}}, "headers.X-A"),
    ({**GOOD, "tags": "one"}, "tags"),
    ({**GOOD, "metadata": {"k": 1}}, "metadata.k"),
    ({**GOOD, "attachments": {}}, "attachments"),
    ({**GOOD, "attachments": ["x"]}, "attachments[0]"),
    ({**GOOD, "attachments": [attachment(content="not base64!")]}, "attachments[0].content"),
    ({**GOOD, "attachments": [attachment(), attachment(content="QUJ")]}, "attachments[1].content"),
    ({**GOOD, "attachments": [{"filename": "a.txt", "content": PDF}]}, "attachments[0].content_type"),
    ({**GOOD, "attachments": [attachment(size="3")]}, "attachments[0].size"),
    # Recipients: to + cc + bcc at most 50, every address valid, each once.
    ({**GOOD, "recipients": addresses(51)}, "recipients"),
    ({**GOOD, "recipients": addresses(30), "cc": addresses(20, "example.org"), "bcc": ["x@example.net"]}, "bcc"),
    ({**GOOD, "recipients": addresses(40), "cc": addresses(11, "example.org")}, "cc"),
    ({**GOOD, "cc": "carol@example.com, not-an-address"}, "cc"),
    ({**GOOD, "bcc": ["@nowhere"]}, "bcc"),
    ({**GOOD, "reply_to": "nobody"}, "reply_to"),
    ({**GOOD, "cc": "BOB@example.com"}, "cc"),
    ({**GOOD, "bcc": ["eve@example.com", "eve@example.com"]}, "bcc"),
    # Bodies and subject.
    ({**GOOD, "subject": "a" * 999}, "subject"),
    ({**GOOD, "content": "a" * 1_000_001}, "content"),
    ({**GOOD, "html": "a" * 1_000_001}, "html"),
    # Attachments.
    ({**GOOD, "attachments": [attachment(filename="")]}, "attachments[0].filename"),
    ({**GOOD, "attachments": [attachment(filename="../etc/passwd")]}, "attachments[0].filename"),
    ({**GOOD, "attachments": [attachment(filename="c:\\boot.ini")]}, "attachments[0].filename"),
    ({**GOOD, "attachments": [attachment(filename="a" * 256)]}, "attachments[0].filename"),
    ({**GOOD, "attachments": [attachment(content_type="pdf")]}, "attachments[0].content_type"),
    ({**GOOD, "attachments": [attachment(content_type="text/plain; charset=utf-8")]}, "attachments[0].content_type"),
    # Custom headers.
    ({**GOOD, "headers": {f"X-H{i}": "v" for i in range(21)}}, "headers"),
    ({**GOOD, "headers": {"X Space": "v"}}, "headers.X Space"),
    ({**GOOD, "headers": {"X:Colon": "v"}}, "headers.X:Colon"),
    ({**GOOD, "headers": {"X-Ünïcode": "v"}}, "headers.X-Ünïcode"),
    ({**GOOD, "headers": {"": "v"}}, "headers."),
    *(({**GOOD, "headers": {name: "v"}}, f"headers.{name}") for name in (
        "From", "to", "CC", "Bcc", "Subject", "Reply-To", "Content-Type", "MIME-Version",
        "Content-Transfer-Encoding", "Message-ID", "Date", "X-Mailgun-Variables", "X-SG-EID", "X-PM-Tag",
        "X-Mercury-Id")),
    ({**GOOD, "headers": {"X-Long": "v" * 997}}, "headers.X-Long"),
    # Tags and metadata.
    ({**GOOD, "tags": [f"t{i}" for i in range(11)]}, "tags"),
    ({**GOOD, "tags": ["ok", "t" * 129]}, "tags[1]"),
    ({**GOOD, "tags": [""]}, "tags[0]"),
    ({**GOOD, "tags": ["caf\u00e9"]}, "tags[0]"),
    ({**GOOD, "tags": ["tab\there"]}, "tags[0]"),
    ({**GOOD, "metadata": {f"k{i}": "v" for i in range(21)}}, "metadata"),
    ({**GOOD, "metadata": {"k" * 65: "v"}}, "metadata." + "k" * 65),
    ({**GOOD, "metadata": {"k": "v" * 1025}}, "metadata.k"),
    ({**GOOD, "metadata": {"mercury_id": "forged"}}, "metadata.mercury_id"),
    ({**GOOD, "metadata": {"sg_message_id": "forged"}}, "metadata.sg_message_id"),
    ({**GOOD, "metadata": {"Event": "delivered"}}, "metadata.Event"),
    ({**GOOD, "metadata": {f"k{i}": "v" * 1000 for i in range(10)}}, "metadata"),
])
def test_each_limit_is_refused_naming_its_field(body, field):
    assert refused_field(body) == field


@pytest.mark.parametrize("body, field", [
    ({**GOOD, "subject": "Hi\r\nBcc: everyone@example.com"}, "subject"),
    ({**GOOD, "subject": "Hi\nX-Spam: no"}, "subject"),
    ({**GOOD, "sender": "alice@example.com\r\nBcc: x@example.com"}, "sender"),
    ({**GOOD, "recipients": ["bob@example.com\nBcc: x@example.com"]}, "recipients"),
    ({**GOOD, "cc": ["carol@example.com\r\nX-A: b"]}, "cc"),
    ({**GOOD, "bcc": ["eve@example.com\rX"]}, "bcc"),
    ({**GOOD, "reply_to": "Support <support@example.com>\r\nBcc: x@example.com"}, "reply_to"),
    ({**GOOD, "headers": {"X-Campaign\r\nBcc": "x@example.com"}}, "headers.X-Campaign\r\nBcc"),
    ({**GOOD, "headers": {"X-Campaign": "spring\r\nBcc: x@example.com"}}, "headers.X-Campaign"),
    ({**GOOD, "headers": {"X-Campaign": "spring\nBcc: x@example.com"}}, "headers.X-Campaign"),
    ({**GOOD, "tags": ["ok", "bad\r\nX-A: b"]}, "tags[1]"),
    ({**GOOD, "metadata": {"k\nX": "v"}}, "metadata.k\nX"),
    ({**GOOD, "metadata": {"k": "v\r\nX-A: b"}}, "metadata.k"),
    ({**GOOD, "attachments": [attachment(filename="a.pdf\r\nContent-Type: text/html")]}, "attachments[0].filename"),
    ({**GOOD, "attachments": [attachment(content_type="text/plain\r\nX-A: b")]}, "attachments[0].content_type"),
])
def test_line_breaks_in_anything_that_becomes_a_header_are_refused(body, field):
    with pytest.raises(InvalidMail) as caught:
        parse(body)
    assert caught.value.field == field
    assert "line break" in caught.value.problem or "type/subtype" in caught.value.problem


def test_attachments_over_the_total_size_are_refused(monkeypatch):
    monkeypatch.setattr(validation, "MAX_ATTACHMENT_BYTES", 10)
    body = {**GOOD, "attachments": [attachment(content=base64.b64encode(b"x" * 6).decode())] * 2}
    assert refused_field(body) == "attachments"


def test_a_mail_too_large_for_one_record_names_its_biggest_part():
    mail = parse({**GOOD, "content": "x" * 10})
    big = Attachment("a.bin", "application/octet-stream", b"\0" * validation.MAX_MAIL_BYTES)
    with pytest.raises(InvalidMail) as caught:
        check_mail(Mail(**{**_fields(mail), "attachments": (big,)}))
    assert caught.value.field == "attachments" and "bytes in all" in caught.value.problem


def test_an_outside_record_is_held_to_the_same_rules():
    """The dispatcher runs check_mail on records that never passed the gateway."""
    record = {"id": "outside-1", "sender": "shop@example.com", "recipients": ["bob@example.com"],
              "subject": "s", "content": "c", "created_at": 1, "headers": {"Bcc": "everyone@example.com"}}
    with pytest.raises(InvalidMail) as caught:
        check_mail(Mail.from_record(record))
    assert caught.value.field == "headers.Bcc"


@pytest.mark.parametrize("tenant", ["default", "acme", "0", "a" * 64, "acme-eu_2"])
def test_a_tenant_is_a_short_lowercase_slug(tenant):
    mail = Mail(**{**_fields(parse(GOOD)), "tenant": tenant, "id": own_mail_id(tenant, "m1")})
    assert check_mail(mail).tenant == tenant


@pytest.mark.parametrize("tenant", ["", "Acme", "-acme", "_acme", "a" * 65, "acme corp", "ac.me", "acme\n", "acmé",
                                    "a'; DROP TABLE mails"])
def test_any_other_tenant_is_refused(tenant):
    with pytest.raises(InvalidMail) as caught:
        check_mail(Mail(**{**_fields(parse(GOOD)), "tenant": tenant}))
    assert caught.value.field == "tenant"


def test_an_outside_record_with_a_malformed_tenant_becomes_a_dead_letter():
    """The refusal comes before any provider, breaker or ledger is consulted, so the dispatcher needs none."""
    record = {"id": "outside-2", "sender": "shop@example.com", "recipients": ["bob@example.com"],
              "subject": "s", "content": "c", "created_at": 1, "tenant": "Not A Tenant"}
    payload = codec.encode(registry.MAIL_REQUEST, record)
    dispatcher = Dispatcher([], None, None, None, None, (1.0,), True, "test-worker")
    outputs = asyncio.run(dispatcher.handle(payload, b"outside-2", Source(topics.REQUESTS, 0, 7, 0)))
    [letter] = [codec.decode(o.value)[1] for o in outputs if o.topic == topics.DEAD]
    assert letter["reason"].startswith("tenant:") and letter["outcome"] == "malformed"
    assert (letter["payload"], letter["source_offset"]) == (payload, 7)
    events = [codec.decode(o.value)[1]["event"] for o in outputs if o.topic == topics.EVENTS]
    assert events == ["rejected", "dead_lettered"]


def test_a_mail_without_a_tenant_belongs_to_the_default_one():
    assert parse(GOOD).tenant == DEFAULT_TENANT == "default"
    assert Mail.from_record({"id": "m", "sender": "a@example.com", "recipients": [], "subject": "", "content": "",
                             "created_at": 1}).tenant == DEFAULT_TENANT


def test_check_mail_normalizes_every_address():
    mail = check_mail(parse({**FULL, "cc": "Carol@EXAMPLE.com", "reply_to": "support@EXAMPLE.COM"}))
    assert mail.cc == ("Carol@example.com",) and mail.reply_to == "support@example.com"


def _fields(mail: Mail) -> dict:
    return {name: getattr(mail, name) for name in Mail.__dataclass_fields__}


def test_more_attachments_than_allowed_are_refused():
    mail = parse(GOOD)
    many = tuple(Attachment(f"{n}.txt", "text/plain", b"") for n in range(validation.MAX_ATTACHMENTS + 1))
    with pytest.raises(InvalidMail) as caught:
        check_mail(Mail(**{**_fields(mail), "attachments": many}))
    assert caught.value.field == "attachments"


def test_the_largest_valid_mail_fits_its_retry_record_and_its_dead_letter():
    """Every field at its limit, the bodies filling what is left: the dispatcher's records still fit Kafka's default."""
    wide = "\u4e00" * 300  # three bytes a character
    fields = _fields(parse(GOOD)) | {
        "subject": "s" * validation.MAX_SUBJECT,
        "recipients": tuple(f"{'r' * 60}{n}@example.com" for n in range(validation.MAX_RECIPIENTS)),
        "headers": {f"X-H{n}": "v" * (validation.MAX_HEADER_LINE - 8) for n in range(validation.MAX_HEADERS)},
        "tags": tuple(f"{n}" + "t" * (validation.MAX_TAG_CHARS - 2) for n in range(validation.MAX_TAGS)),
        "metadata": {f"k{n}": "m" * 440 for n in range(validation.MAX_METADATA_KEYS)},
        "attachments": tuple(Attachment(f"{n}{'f' * 250}", "application/" + "x" * 200, b"")
                             for n in range(validation.MAX_ATTACHMENTS)),
    }
    used = len(codec.encode(registry.MAIL_REQUEST, Mail(**fields).to_record()))
    mail = Mail(**fields | {"content": "c" * (validation.MAX_MAIL_BYTES - used)})
    while True:  # grow the body to within a kilobyte of the limit
        try:
            check_mail(replace(mail, content=mail.content + "c" * 1000))
        except InvalidMail:
            break
        mail = replace(mail, content=mail.content + "c" * 1000)
    check_mail(mail)
    job = Job(mail, Source(topics.retry_topic(0), 0, 1, 0), excluded={"mailgun", "sendgrid"})
    retry = job.retry_record(3, 1, wide * 10)
    letter = codec.encode("mercury.DeadLetter", {
        "mail_id": mail.id, "reason": (wide * 10)[:MAX_REASON_CHARS], "outcome": "exhausted",
        "source_topic": topics.retry_topic(0), "source_partition": 0, "source_offset": 1,
        "payload": codec.encode(registry.MAIL_REQUEST, mail.to_record()), "dead_at": 1})
    assert len(retry) < KAFKA_RECORD_BYTES - RECORD_FRAMING
    assert len(letter) < KAFKA_RECORD_BYTES - RECORD_FRAMING
