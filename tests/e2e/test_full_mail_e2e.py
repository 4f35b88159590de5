"""A full mail (HTML, cc, bcc, reply-to, headers, attachments, tags, metadata) through the running stack: over
HTTP, through Kafka, the dispatcher and a retry topic, into a provider's mailbox whole; and the bad ones refused
over HTTP with the field named, or dead-lettered with the reason when an outside producer wrote them."""
import base64
import hashlib

import pytest
from confluent_kafka import Producer

from schemas import codec
from tests.e2e.conftest import dead_letters, events_of, gateway, unique_subject, wait_for, wait_for_event

PDF = b"%PDF-1.4\n\x00\xff\xfe binary body"
BASE = {"sender": "alice@example.com", "recipients": "bob@example.com", "subject": "s", "content": "c"}


def full_body(subject: str) -> dict:
    return {
        "sender": "alice@example.com", "recipients": ["bob@example.com", "ben@example.com"], "subject": subject,
        "content": "Plain text", "html": "<p>Rich <b>text</b></p>", "cc": "carol@example.com",
        "bcc": ["eve@example.com"], "reply_to": "support@example.com",
        "headers": {"X-Campaign": "spring-sale"},
        "attachments": [{"filename": "invoice.pdf", "content_type": "application/pdf",
                         "content": base64.b64encode(PDF).decode()}],
        "tags": ["invoice", "spring"], "metadata": {"customer": "42"},
    }


def received(sandbox, subject: str) -> tuple[str, dict] | None:
    for provider in sandbox.ports:
        for message in sandbox.messages(provider):
            if message["subject"] == subject:
                return provider, message
    return None


def test_a_full_mail_goes_through_a_retry_and_arrives_complete(api, sandbox):
    subject = unique_subject("full mail")
    for provider in sandbox.ports:
        sandbox.set_faults(provider, error_rate=1.0, status=503)
    try:
        response = gateway.post(f"{api}/mails/", json=full_body(subject), timeout=10)
        assert response.status_code == 202, response.text
        mail_id = response.json()["id"]
        wait_for_event(api, mail_id, "retry_scheduled")
    finally:
        sandbox.clear_faults()
    events = wait_for_event(api, mail_id, "sent", timeout=60)
    kinds = [e["event"] for e in events]
    assert kinds.index("retry_scheduled") < kinds.index("sent")

    provider, message = wait_for(lambda: received(sandbox, subject), what="the mail in a sandbox mailbox")
    assert (message["recipients"], message["cc"], message["bcc"]) == (
        ["bob@example.com", "ben@example.com"], ["carol@example.com"], ["eve@example.com"])
    assert (message["text"], message["html"], message["reply_to"]) == (
        "Plain text", "<p>Rich <b>text</b></p>", "support@example.com")
    assert message["headers"] == {"X-Campaign": "spring-sale"} and message["tags"] == ["invoice", "spring"]
    assert message["custom"]["customer"] == "42" and mail_id in message["custom"].values()
    assert message["attachments"] == [{"filename": "invoice.pdf", "content_type": "application/pdf",
                                       "size": len(PDF), "sha256": hashlib.sha256(PDF).hexdigest()}]


@pytest.mark.parametrize("body, field", [
    ({**BASE, "cc": "carol@example.com, nobody"}, "cc"),
    ({**BASE, "headers": {"X-Campaign": "a\r\nBcc: everyone@example.com"}}, "headers.X-Campaign"),
    ({**BASE, "headers": {"Reply-To": "x@example.com"}}, "headers.Reply-To"),
    ({**BASE, "attachments": [{"filename": "a.pdf", "content_type": "application/pdf", "content": "%%%"}]},
     "attachments[0].content"),
    ({**BASE, "attachments": [{"filename": "../a.pdf", "content_type": "application/pdf", "content": ""}]},
     "attachments[0].filename"),
    ({**BASE, "tags": ["t" * 129]}, "tags[0]"),
    ({**BASE, "metadata": {"k": "v\nX: y"}}, "metadata.k"),
    ({**BASE, "content": "", "html": ""}, "content"),
])
def test_a_bad_full_mail_gets_422_naming_the_field_and_a_rejected_event(api, body, field):
    response = gateway.post(f"{api}/mails/", json=body, timeout=10)
    assert response.status_code == 422
    answer = response.json()
    assert answer["field"] == field and answer["error"].startswith(f"{field}:")
    events = wait_for(lambda: events_of(api, answer["mail_id"]), what="the rejected event")
    assert [e["event"] for e in events] == ["rejected"] and field in events[0]["blob"]


def test_an_outside_full_record_with_an_injected_header_is_dead_lettered_with_the_reason(api, stack):
    mail_id = "outside-full-" + unique_subject("x")[-12:]
    record = {"id": mail_id, "sender": "shop@example.com", "recipients": ["bob@example.com"], "subject": "s",
              "content": "c", "created_at": 1_700_000_000_000, "html": "<p>c</p>", "cc": ["carol@example.com"],
              "headers": {"X-Campaign": "spring\r\nBcc: everyone@example.com"},
              "attachments": [{"filename": "a.pdf", "content_type": "application/pdf", "content": PDF}],
              "tags": ["t"], "metadata": {"k": "v"}}
    producer = Producer({"bootstrap.servers": stack.config.bootstrap})
    producer.produce("mail.requests", key=mail_id.encode(), value=codec.encode("mercury.MailRequest", record))
    assert producer.flush(10) == 0

    [letter] = dead_letters(stack.config.bootstrap, lambda d: d["mail_id"] == mail_id, 1)
    assert letter["outcome"] == "malformed"
    assert letter["reason"] == "headers.X-Campaign: must not contain line breaks"
    assert codec.decode(letter["payload"])[1]["attachments"][0]["content"] == PDF
    kinds = [e["event"] for e in wait_for_event(api, mail_id, "dead_lettered")]
    assert kinds == ["rejected", "dead_lettered"]
