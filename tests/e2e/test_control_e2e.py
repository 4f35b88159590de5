"""The provider registry and the configurations on the running stack: the dispatcher workers apply a change
without a restart, and a provider's secret is in no answer and no process's log."""
from collections.abc import Iterator

import orjson
import pytest

from tests.e2e.conftest import gateway, post_mail, unique_subject, wait_for, wait_for_event

PROVIDERS = "dispatcher/providers"
SECRET = "registry-secret-0123456789"


def provider_of(api: str, mail_id: str) -> str:
    return next(e["provider"] for e in wait_for_event(api, mail_id, "sent") if e["event"] == "sent")


@pytest.fixture
def only_a_registered_provider(api: str, sandbox) -> Iterator[str]:
    """`mailgun-eu` (type mailgun, added through the API) is the only provider enabled; all is put back after."""
    added = gateway.post(f"{api}/{PROVIDERS}/", json={
        "id": "mailgun-eu", "type": "mailgun", "settings": {"domain": "eu.sandbox.mercury.local"},
        "secrets": {"api_key": "sandbox-key"}}, timeout=10)
    assert added.status_code == 201, added.text
    try:
        for name in ("mailgun", "sendgrid"):
            assert gateway.put(f"{api}/{PROVIDERS}/{name}", json={"enabled": False}, timeout=10).status_code == 200
        yield "mailgun-eu"
    finally:
        for name in ("mailgun", "sendgrid"):
            gateway.put(f"{api}/{PROVIDERS}/{name}", json={"enabled": True}, timeout=10)
        gateway.delete(f"{api}/{PROVIDERS}/mailgun-eu", timeout=10)


def test_running_workers_send_through_a_provider_added_at_runtime(api, only_a_registered_provider):
    # The workers apply the change within moments of the answer: wait for the first mail that shows it, then
    # every following mail must go the new way.
    wait_for(lambda: provider_of(api, post_mail(api, unique_subject("registry"))) == "mailgun-eu",
             what="a mail sent through mailgun-eu")
    providers = [provider_of(api, post_mail(api, unique_subject("registry"))) for _ in range(5)]
    assert providers == ["mailgun-eu"] * 5


def test_a_providers_secret_is_in_no_answer_and_no_log(stack, api):
    added = gateway.post(f"{api}/{PROVIDERS}/", json={
        "id": "postmark-eu", "type": "postmark", "enabled": False, "secrets": {"server_token": SECRET}}, timeout=10)
    assert added.status_code == 201, added.text
    try:
        shown = gateway.get(f"{api}/{PROVIDERS}/postmark-eu", timeout=10)
        assert shown.json()["secrets"] == ["server_token"] and SECRET not in added.text + shown.text
        assert SECRET not in gateway.get(f"{api}/{PROVIDERS}/", timeout=10).text
        wait_for(lambda: all("id=postmark-eu" in (stack.logs / f"dispatcher-{n}.log").read_text()
                             for n in range(stack.config.dispatchers)), what="every worker to apply the entry")
        for log in stack.logs.glob("*.log"):
            assert SECRET not in log.read_text(errors="replace"), log.name
    finally:
        gateway.delete(f"{api}/{PROVIDERS}/postmark-eu", timeout=10)


def test_a_new_retry_ladder_applies_without_a_restart(api, sandbox):
    ladder = gateway.put(f"{api}/configurations/retry_ladder", json={"value": {"delays_s": [3, 3, 3, 3, 3]}},
                         timeout=10)
    assert ladder.status_code == 200, ladder.text
    try:
        for provider in ("mailgun", "sendgrid"):
            sandbox.set_faults(provider, error_rate=1, status=503)

        def first_retry_delay() -> float:
            events = wait_for_event(api, post_mail(api, unique_subject("ladder")), "retry_scheduled")
            return next(orjson.loads(e["blob"])["delay_s"] for e in events if e["event"] == "retry_scheduled")

        wait_for(lambda: first_retry_delay() == 3, what="a retry scheduled on the new ladder")
        sandbox.clear_faults()
    finally:
        sandbox.clear_faults()
        reverted = gateway.delete(f"{api}/configurations/retry_ladder", timeout=10)
    assert reverted.status_code in (200, 204), reverted.text
    assert gateway.get(f"{api}/configurations/retry_ladder", timeout=10).json()["source"] == "environment"
