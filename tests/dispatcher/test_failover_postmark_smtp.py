"""The dispatcher with Postmark and SMTP over the real sandbox: failover from a down Postmark to the relay, and
recipients the relay refused named on the `sent` event."""
import random
import time
import uuid

import orjson
from sandbox_client import Sandbox

from dispatcher.delivery import Dispatcher
from dispatcher.jobs import Source
from dispatcher.ratelimit import RateLimits
from dispatcher.sender import BoundedSender
from providers.config import load_providers
from schemas import codec, topics


def dispatcher_for(fleet, sandbox: Sandbox, providers: str) -> Dispatcher:
    services = load_providers({"MERCURY_PROVIDERS": providers, **sandbox.env()})
    health = fleet.health([s.name for s in services], failures=2, recovery_s=30)
    return Dispatcher(services, health, fleet.ledger(health.instance), RateLimits({}, health.fleet_size),
                      BoundedSender(2), (0.3, 0.6), True, "test-worker", random.Random(7))


def request(mail_id: str, recipients: list[str]) -> bytes:
    return codec.encode("mercury.MailRequest", {
        "id": mail_id, "sender": "alice@example.com", "recipients": recipients, "subject": f"s-{mail_id}",
        "content": "hello", "created_at": int(time.time() * 1000), "origin": "http"})


def test_a_mail_fails_over_from_a_down_postmark_to_smtp(fleet, sandbox: Sandbox) -> None:
    sandbox.set_faults("postmark", down=True)
    dispatcher = dispatcher_for(fleet, sandbox, "postmark,smtp")
    failed_over = 0
    for _ in range(4):
        mail_id = uuid.uuid4().hex
        payload = request(mail_id, ["bob@example.com"])

        outputs = fleet.run(dispatcher.handle(payload, None, Source(topics.REQUESTS, 0, 1, 0)))

        events = [codec.decode(o.value)[1] for o in outputs if o.topic == topics.EVENTS]
        assert (events[-1]["event"], events[-1]["provider"]) == ("sent", "smtp")
        for failed in (e for e in events if e["event"] == "attempt_failed"):
            assert failed["provider"] == "postmark" and failed["outcome"] == "transient"
            assert '"cause":"network"' in failed["blob"]
            failed_over += 1
        [received] = [m for m in sandbox.messages("smtp") if m["custom"]["mercury-id"] == mail_id]
        assert received["id"] in events[-1]["blob"]
    assert failed_over, "no mail tried Postmark first: the failover went unexercised"


def test_recipients_the_relay_refused_are_named_on_the_sent_event(fleet, sandbox: Sandbox) -> None:
    sandbox.set_faults("smtp", reject_recipients=["bounce"])
    dispatcher = dispatcher_for(fleet, sandbox, "smtp")
    mail_id = uuid.uuid4().hex
    payload = request(mail_id, ["bob@example.com", "bounce@example.com"])

    outputs = fleet.run(dispatcher.handle(payload, None, Source(topics.REQUESTS, 0, 1, 0)))

    sent = [codec.decode(o.value)[1] for o in outputs if o.topic == topics.EVENTS][-1]
    assert sent["event"] == "sent" and orjson.loads(sent["blob"])["refused_recipients"] == ["bounce@example.com"]
