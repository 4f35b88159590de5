"""Each field of a full mail arrives where the provider's real API puts it, over real HTTP to the sandbox, and
the sandbox refuses what the real APIs refuse."""
import hashlib
import time
import uuid

import pytest
import requests
from loop_thread import Run
from sandbox_client import Sandbox

from providers import PermanentError
from schemas.model import Attachment, Mail

PDF = Attachment("report.pdf", "application/pdf", b"%PDF-1.4\n\x00\xff binary \r\n--not-a-boundary")
NOTES = Attachment('notes "q1".txt', "text/plain", "grüße\n".encode())


def full_mail(attachments: tuple[Attachment, ...] = ()) -> Mail:
    return Mail(
        id=str(uuid.uuid4()), sender="noreply@mercury.example", recipients=("ada@example.com", "bob@example.com"),
        subject="Spring offer", content="Plain body", created_at=int(time.time() * 1000),
        html="<p>HTML body</p>", cc=("carol@example.com",), bcc=("eve@example.com", "frank@example.org"),
        reply_to="support@mercury.example", headers={"X-Campaign": "spring", "List-Id": "<news.example>"},
        attachments=attachments, tags=("welcome", "spring"), metadata={"customer": "42", "plan": "pro"},
    )


def digest(attachment: Attachment) -> dict:
    return {"filename": attachment.filename, "content_type": attachment.content_type,
            "size": len(attachment.content), "sha256": hashlib.sha256(attachment.content).hexdigest()}


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
@pytest.mark.parametrize("attachments", [(), (PDF, NOTES)], ids=["no-attachments", "attachments"])
def test_every_field_arrives_where_the_provider_puts_it(sandbox: Sandbox, provider, attachments, run: Run):
    mail = full_mail(attachments)
    result = run(sandbox.service(provider).send(mail))
    [received] = sandbox.messages(provider)
    assert received["id"] == result.message_id
    assert (received["sender"], received["subject"]) == (mail.sender, mail.subject)
    assert (received["recipients"], received["cc"], received["bcc"]) == (
        list(mail.recipients), list(mail.cc), list(mail.bcc))
    assert (received["text"], received["html"], received["reply_to"]) == (mail.content, mail.html, mail.reply_to)
    assert received["headers"] == mail.headers
    assert received["tags"] == list(mail.tags)
    assert received["custom"] == {**mail.metadata,
                                  {"mailgun": "mercury-id", "sendgrid": "mercury_id"}[provider]: mail.id}
    assert received["attachments"] == [digest(a) for a in attachments]


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
def test_an_html_only_mail_is_sent_without_an_empty_text_part(sandbox: Sandbox, provider, run: Run):
    mail = Mail(id="m-html", sender="noreply@mercury.example", recipients=("ada@example.com",), subject="s",
                content="", created_at=1, html="<b>only html</b>")
    run(sandbox.service(provider).send(mail))
    [received] = sandbox.messages(provider)
    assert (received["text"], received["html"], received["cc"], received["tags"]) == ("", "<b>only html</b>", [], [])


def sendgrid_send(sandbox: Sandbox, **changes: object) -> requests.Response:
    body = {"personalizations": [{"to": [{"email": "ada@example.com"}]}], "from": {"email": "a@example.com"},
            "subject": "s", "content": [{"type": "text/plain", "value": "t"}], **changes}
    return requests.post(f"{sandbox.url('sendgrid')}/v3/mail/send", json=body, timeout=5,
                         headers={"Authorization": "Bearer sandbox-key"})


@pytest.mark.parametrize("changes, field, words", [
    ({"personalizations": [{"to": [{"email": "ada@example.com"}], "cc": [{"email": "ADA@example.com"}]}]},
     "personalizations.0", "unique between to, cc, and bcc"),
    ({"personalizations": [{"to": [{"email": "ada@example.com"}], "bcc": []}]}, "personalizations.0.bcc", "bcc array"),
    ({"categories": [f"c{i}" for i in range(11)]}, "categories", "more than 10 categories"),
    ({"categories": ["a" * 256]}, "categories.0", "255"),
    ({"content": [{"type": "text/html", "value": "<p>h</p>"}, {"type": "text/plain", "value": "t"}]},
     "content.1.type", "text/plain must be first"),
    ({"reply_to": {"email": "nobody"}}, "reply_to.email", "reply_to"),
    ({"headers": {"Subject": "forged"}}, "headers", "reserved"),
    ({"attachments": [{"content": "not base64!", "filename": "a.txt"}]}, "attachments.0.content", "base64"),
    ({"attachments": [{"content": "aGk=", "filename": ""}]}, "attachments.0.filename", "filename"),
    ({"custom_args": {"k": "v" * 10_000}}, "custom_args", "10000 bytes"),
])
def test_sendgrid_refuses_what_the_real_api_refuses(sandbox: Sandbox, changes, field, words):
    response = sendgrid_send(sandbox, **changes)
    assert response.status_code == 400
    [error] = [e for e in response.json()["errors"] if e["field"] == field]
    assert words in error["message"]
    assert sandbox.messages("sendgrid") == []


def mailgun_send(sandbox: Sandbox, fields: list[tuple[str, str]], files: list | None = None) -> requests.Response:
    base = [("from", "a@example.com"), ("to", "ada@example.com"), ("subject", "s"), ("text", "t")]
    return requests.post(f"{sandbox.url('mailgun')}/v3/sandbox.example/messages", auth=("api", "sandbox-key"),
                         files=[(k, (None, v)) for k, v in base + fields] + (files or []), timeout=5)


@pytest.mark.parametrize("fields, words", [
    ([("cc", "not-an-address")], "'cc' parameter is not a valid address"),
    ([("bcc", "x@")], "'bcc' parameter is not a valid address"),
    ([("o:tag", f"t{i}") for i in range(11)], "o:tag"),
    ([("attachment", "plain text, not a file")], "must be a file"),
])
def test_mailgun_refuses_what_the_real_api_refuses(sandbox: Sandbox, fields, words):
    response = mailgun_send(sandbox, fields)
    assert response.status_code == 400 and words in response.json()["message"]
    assert sandbox.messages("mailgun") == []


def test_a_duplicate_recipient_reaching_sendgrid_is_permanent(sandbox: Sandbox, run: Run):
    """Validation refuses repeats before any send; were one to slip through, SendGrid's 400 dead-letters it."""
    mail = Mail(id="m-dup", sender="a@example.com", recipients=("ada@example.com",), subject="s", content="c",
                created_at=1, bcc=("ada@example.com",))
    with pytest.raises(PermanentError) as caught:
        run(sandbox.service("sendgrid").send(mail))
    assert "unique between to, cc, and bcc" in caught.value.detail


def test_mailgun_keeps_attachment_bytes_exactly(sandbox: Sandbox):
    data = bytes(range(256)) * 4
    response = mailgun_send(sandbox, [], files=[("attachment", ("all-bytes.bin", data, "application/octet-stream"))])
    assert response.status_code == 200
    [received] = sandbox.messages("mailgun")
    assert received["attachments"] == [digest(Attachment("all-bytes.bin", "application/octet-stream", data))]
