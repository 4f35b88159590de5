"""Provider webhooks end to end: the sandbox reports what became of each mail, signed as the real provider
would, the gateway verifies and publishes it to mail.feedback under the message id of the mail's `sent` event."""
import json
import time
import uuid

import requests

from deploy.stack import LocalStack
from schemas import topics
from tests.e2e.conftest import events_of, post_mail, records_on, unique_subject, wait_for_event

EXPECTED = {
    "bob@example.com": [("delivered", "")],
    "bounce@example.com": [("bounced", "hard")],
    "click@example.com": [("clicked", ""), ("delivered", ""), ("opened", "")],
}


def feedback_for(bootstrap: str, message_ids: set[str], wanted: int, timeout: float = 30.0) -> list[dict]:
    """Read mail.feedback from the beginning until `wanted` records about these message ids were seen; each
    is keyed by its message id."""
    def about(key: bytes, record: dict) -> bool:
        if record["message_id"] not in message_ids:
            return False
        assert key.decode() == record["message_id"]
        return True

    return records_on(bootstrap, topics.FEEDBACK, about, wanted, timeout)


def sent_event(api: str, mail_id: str) -> dict:
    wait_for_event(api, mail_id, "sent")
    return next(e for e in events_of(api, mail_id) if e["event"] == "sent")


def test_feedback_reaches_kafka_under_the_sent_events_message_id(api: str, sandbox, stack: LocalStack):
    subject = unique_subject("webhooks")
    mails = {recipient: post_mail(api, subject, recipient) for recipient in EXPECTED}
    sent = {recipient: sent_event(api, mail_id) for recipient, mail_id in mails.items()}
    message_ids = {recipient: json.loads(event["blob"])["message_id"] for recipient, event in sent.items()}
    assert all(message_ids.values())

    wanted = sum(len(events) for events in EXPECTED.values())
    records = feedback_for(stack.config.bootstrap, set(message_ids.values()), wanted)
    for recipient, message_id in message_ids.items():
        mine = [r for r in records if r["message_id"] == message_id]
        assert sorted((r["event"], r["bounce"]) for r in mine) == EXPECTED[recipient], recipient
        assert {(r["provider"], r["recipient"], r["created_by"]) for r in mine} == {
            (sent[recipient]["provider"], recipient, "ingest/webhooks")}
        assert all(r["occurred_at"] > 0 and r["received_at"] >= r["occurred_at"] - 1000 for r in mine)
    assert all(r["reason"] for r in records if r["event"] == "bounced")
    assert all(r["url"].startswith("https://") for r in records if r["event"] == "clicked")


def test_a_badly_signed_webhook_is_refused(api: str):
    mailgun = {"signature": {"timestamp": str(int(time.time())), "token": uuid.uuid4().hex, "signature": "0" * 64},
               "event-data": {"event": "delivered", "id": "forged"}}
    answer = requests.post(f"{api}/webhooks/mailgun", json=mailgun, timeout=10)
    assert answer.status_code == 401 and "does not match" in answer.json()["error"]

    forged = requests.post(f"{api}/webhooks/sendgrid", data=b'[{"event": "delivered"}]\r\n', timeout=10, headers={
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQDforgedforgedforgedforgedforgedforgedforged==",
        "X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time())),
    })
    assert forged.status_code == 401 and forged.json()["error"]
    unsigned = requests.post(f"{api}/webhooks/sendgrid", data=b"[]", timeout=10)
    assert unsigned.status_code == 401 and "headers are required" in unsigned.json()["error"]


def test_a_webhook_that_is_not_json_gets_a_reason(api: str):
    answer = requests.post(f"{api}/webhooks/mailgun", data=b"{not json", timeout=10)
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"]
