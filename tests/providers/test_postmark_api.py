"""Postmark beyond the shared contract: every ErrorCode the sandbox answers, classified, and the full wire shape."""
import base64
import time
import uuid

import pytest
import requests
from loop_thread import Run
from sandbox_client import Sandbox

from providers import PermanentError, ProviderError, ProviderFailure, TransientError, load_providers
from providers.postmark import Postmark
from schemas.model import Attachment, Mail
from schemas.vocabulary import FailureCause


def mail(**fields: object) -> Mail:
    defaults: dict = {
        "id": str(uuid.uuid4()), "sender": "noreply@mercury.example", "recipients": ("ada@example.com",),
        "subject": "Hello", "content": "Body", "created_at": int(time.time() * 1000),
    }
    return Mail(**{**defaults, **fields})


def test_settings_come_from_the_environment() -> None:
    [default] = load_providers({"MERCURY_PROVIDERS": "postmark"})
    [configured] = load_providers({"MERCURY_PROVIDERS": "postmark", "POSTMARK_BASE_URL": "https://api.postmarkapp.com",
                                   "POSTMARK_SERVER_TOKEN": "server-token"})

    assert isinstance(default, Postmark) and default.url == "http://127.0.0.1:8027/email"
    assert configured.url == "https://api.postmarkapp.com/email"  # type: ignore[attr-defined]
    assert configured.headers == {"X-Postmark-Server-Token": "server-token"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "error_code, expected",
    [
        (10, ProviderFailure),
        (100, TransientError),
        (300, PermanentError),
        (400, ProviderFailure),
        (401, ProviderFailure),
        (405, ProviderFailure),
        (406, PermanentError),
        (411, PermanentError),
        (412, ProviderFailure),
        (413, ProviderFailure),
        (9999, ProviderFailure),
    ],
)
def test_each_documented_error_code_is_classified(
    sandbox: Sandbox, error_code: int, expected: type[ProviderError], run: Run
) -> None:
    sandbox.set_faults("postmark", error_rate=1.0, status=422, error_code=error_code)
    service = sandbox.service("postmark")

    with pytest.raises(expected) as caught:
        run(service.send(mail()))

    assert type(caught.value) is expected
    assert caught.value.status == 422
    assert f"ErrorCode {error_code}" in caught.value.detail
    if expected is TransientError:
        assert caught.value.cause is FailureCause.PROVIDER


def test_an_injected_422_without_a_code_is_postmarks_invalid_request(sandbox: Sandbox, run: Run) -> None:
    sandbox.set_faults("postmark", error_rate=1.0, status=422)

    with pytest.raises(PermanentError) as caught:
        run(sandbox.service("postmark").send(mail()))

    assert "ErrorCode 300" in caught.value.detail


def test_every_field_reaches_postmark(sandbox: Sandbox, run: Run) -> None:
    sent = mail(
        recipients=("Ada <ada@example.com>", "grace@example.org"), cc=("cc@example.com",), bcc=("bcc@example.com",),
        html="<p>Body</p>", reply_to="replies@mercury.example", headers={"X-Campaign": "spring"},
        attachments=(Attachment("report.pdf", "application/pdf", b"%PDF-1.7"),), tags=("welcome", "spring"),
        metadata={"customer": "42"},
    )
    result = run(sandbox.service("postmark").send(sent))

    [received] = sandbox.messages("postmark")
    assert received["id"] == result.message_id
    assert received["recipients"] == ["ada@example.com", "grace@example.org"]
    assert (received["cc"], received["bcc"]) == (["cc@example.com"], ["bcc@example.com"])
    assert (received["text"], received["html"], received["reply_to"]) == ("Body", "<p>Body</p>", sent.reply_to)
    assert received["headers"] == {"X-Campaign": "spring"}
    assert received["tags"] == ["welcome"]
    assert received["custom"] == {"customer": "42", "mercury_id": sent.id, "mercury_tags": "welcome,spring"}
    [attachment] = received["attachments"]
    assert (attachment["filename"], attachment["content_type"], attachment["size"]) == (
        "report.pdf", "application/pdf", 8)


def test_wire_shape(sandbox: Sandbox) -> None:
    url = f"{sandbox.url('postmark')}/email"
    token = {"X-Postmark-Server-Token": "sandbox-key"}
    payload = {"From": "a@example.com", "To": "ada@example.com, bob@example.org", "Subject": "s", "TextBody": "t"}

    accepted = requests.post(url, json=payload, headers=token, timeout=5)
    no_body = requests.post(url, json={**payload, "TextBody": ""}, headers=token, timeout=5)
    bad_json = requests.post(url, data=b"{", headers=token, timeout=5)
    bad_to = requests.post(url, json={**payload, "To": "nobody"}, headers=token, timeout=5)
    forbidden = requests.post(url, json={**payload, "Attachments": [
        {"Name": "run.exe", "Content": base64.b64encode(b"MZ").decode(), "ContentType": "application/octet-stream"}
    ]}, headers=token, timeout=5)
    unauthorized = requests.post(url, json=payload, headers={"X-Postmark-Server-Token": "wrong"}, timeout=5)

    assert accepted.status_code == 200
    body = accepted.json()
    assert (body["ErrorCode"], body["Message"], body["To"]) == (0, "OK", payload["To"])
    assert body["SubmittedAt"] and body["MessageID"] == sandbox.messages("postmark")[0]["id"]
    assert (no_body.status_code, no_body.json()["ErrorCode"]) == (422, 300)
    assert (bad_json.status_code, bad_json.json()["ErrorCode"]) == (422, 402)
    assert (bad_to.status_code, bad_to.json()["ErrorCode"]) == (422, 300)
    assert (forbidden.status_code, forbidden.json()["ErrorCode"]) == (422, 411)
    assert (unauthorized.status_code, unauthorized.json()["ErrorCode"]) == (401, 10)
