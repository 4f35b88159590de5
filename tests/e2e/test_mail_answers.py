"""What a client expects from the mail API on the running stack: a mail's status follows the providers' reports
(the sandbox reports a bounce for `bounce@…` and a delivery for anyone else), and `/mails` is `/mails/`."""
import requests

from tests.e2e.conftest import post_mail, unique_subject, wait_for, wait_for_event
from tests.e2e.sessions import gateway

BODY = {"sender": "alice@example.com", "recipients": "bob@example.com", "subject": "no slash", "content": "hi"}


def mail_status(api: str, mail_id: str) -> tuple[str, str | None]:
    mail = gateway.get(f"{api}/mails/{mail_id}", timeout=10).json()
    return mail["status"], mail.get("bounce")


def test_a_mail_the_provider_bounced_reads_bounced_everywhere(api: str, sandbox):
    bounced = post_mail(api, unique_subject("bounced"), "bounce@example.com")
    delivered = post_mail(api, unique_subject("delivered"), "bob@example.com")
    wait_for_event(api, bounced, "sent")

    assert wait_for(lambda: mail_status(api, bounced) == ("bounced", "hard"), timeout=60,
                    what="the provider's bounce in the mail's status")
    wait_for(lambda: mail_status(api, delivered) == ("delivered", None), timeout=60,
             what="the provider's delivery in the other mail's status")
    listed = {m["id"]: m for m in gateway.get(f"{api}/mails/", params={"per_page": 500}, timeout=10).json()["mails"]}
    assert (listed[bounced]["status"], listed[bounced]["bounce"]) == ("bounced", "hard")
    assert listed[delivered]["status"] == "delivered" and "bounce" not in listed[delivered]
    trace = gateway.get(f"{api}/analytics/mails/{bounced}/trace", timeout=10).json()
    assert (trace["status"], trace["bounce"]) == ("bounced", "hard")
    assert [(f["event"], f["bounce"]) for f in trace["feedback"]] == [("bounced", "hard")]
    # The pipeline's own history is unchanged: the reports are not events of the mail.
    assert trace["events"][-1]["event"] == "sent"


def test_mails_without_the_slash_are_answered_as_with_it(api: str, sandbox, stack):
    posted = gateway.post(f"{api}/mails", json={**BODY, "subject": unique_subject("no slash")}, timeout=10,
                          allow_redirects=False)
    assert posted.status_code == 202, posted.text
    mail_id = posted.json()["id"]
    assert posted.headers["Location"] == f"/api/v1.0/mails/{mail_id}"
    wait_for_event(api, mail_id, "sent")

    refused = gateway.post(f"{api}/mails", json={**BODY, "sender": "not an address"}, timeout=10,
                           allow_redirects=False)
    assert refused.status_code == 422 and refused.json()["field"] == "sender" and refused.json()["mail_id"]

    listed = gateway.get(f"{api}/mails", params={"per_page": 500}, timeout=10, allow_redirects=False)
    assert listed.status_code == 200, listed.text
    assert mail_id in {m["id"] for m in listed.json()["mails"]}
    assert set(listed.json()) == set(gateway.get(f"{api}/mails/", timeout=10).json())
    assert requests.get(f"{api}/mails", timeout=10, allow_redirects=False).status_code == 401
    # Each operation is documented once, under `/mails/`.
    paths = requests.get(f"{stack.config.api_url}/openapi.json", timeout=10).json()["paths"]
    assert "/api/v1.0/mails" not in paths
    assert set(paths["/api/v1.0/mails/"]) == {"get", "post"}
