"""The delivery policy against the real sandbox over HTTP: records in, records out (health and ledger on the broker)."""
import asyncio
import random
import time
import uuid
from dataclasses import dataclass

import pytest
from conftest import Fleet
from sandbox_client import Sandbox

from dispatcher.delivery import MAX_DEAD_PAYLOAD, Dispatcher
from dispatcher.health import FleetHealth
from dispatcher.jobs import Source
from dispatcher.ledger import SENDING
from dispatcher.ratelimit import RateLimits
from dispatcher.sender import BoundedSender
from providers.config import load_providers
from schemas import codec, topics
from schemas.kafka.publishing import Output

DELAYS = (0.3, 0.6)


@dataclass
class Worker:
    """A dispatcher and the fleet (broker topics, event loop) it runs in."""

    dispatcher: Dispatcher
    fleet: Fleet

    @property
    def health(self) -> FleetHealth:
        return self.dispatcher.health


def make_dispatcher(sandbox: Sandbox, fleet: Fleet, retry_ambiguous: bool = True, keys: dict[str, str] | None = None,
                    failures: int = 2, rates: dict[str, float] | None = None, concurrency: int = 4) -> Worker:
    env = {f"{name.upper()}_BASE_URL": sandbox.url(name) for name in sandbox.ports}
    env["MERCURY_PROVIDER_READ_TIMEOUT"] = "0.5"
    env.update(keys or {})
    services = load_providers(env)
    health = fleet.health([s.name for s in services], failures=failures, recovery_s=30)
    limits = RateLimits(rates or {}, health.fleet_size)
    dispatcher = Dispatcher(services, health, fleet.ledger(health.instance), limits, BoundedSender(concurrency), DELAYS,
                            retry_ambiguous, "test-worker", random.Random(7))
    return Worker(dispatcher, fleet)


def request(recipient: str = "bob@example.com", origin: str = "http") -> tuple[bytes, Source]:
    mail_id = uuid.uuid4().hex
    payload = codec.encode("mercury.MailRequest", {
        "id": mail_id, "sender": "alice@example.com", "recipients": [recipient], "subject": f"s-{mail_id}",
        "content": "hello", "created_at": int(time.time() * 1000), "origin": origin})
    return payload, Source(topics.REQUESTS, 0, 1, 0)


def handle(worker: Worker, payload: bytes, source: Source, key: bytes | None = None) -> list[Output]:
    return worker.fleet.run(worker.dispatcher.handle(payload, key, source))


def decoded(outputs: list[Output], topic: str) -> list[dict]:
    return [codec.decode(o.value)[1] for o in outputs if o.topic == topic]


def kinds(outputs: list[Output]) -> list[str]:
    return [e["event"] for e in decoded(outputs, topics.EVENTS)]


def test_an_accepted_send_yields_dispatched_then_sent(fleet, sandbox):
    payload, source = request()
    outputs = handle(make_dispatcher(sandbox, fleet), payload, source)
    assert kinds(outputs) == ["dispatched", "sent"]
    sent = decoded(outputs, topics.EVENTS)[1]
    assert sent["provider"] in sandbox.ports and '"message_id"' in sent["blob"]
    assert sum(sandbox.received(codec.decode(payload)[1]["subject"]).values()) == 1


def test_a_mail_from_an_outside_producer_gets_one_accepted_event_whatever_the_redeliveries(fleet, sandbox):
    dispatcher = make_dispatcher(sandbox, fleet)
    payload, source = request(origin="kafka")
    first, again = handle(dispatcher, payload, source), handle(dispatcher, payload, source)
    assert kinds(first)[0] == "accepted"
    assert decoded(first, topics.EVENTS)[0]["id"] == decoded(again, topics.EVENTS)[0]["id"]


def test_a_down_provider_fails_over_at_once(fleet, sandbox):
    sandbox.set_faults("mailgun", down=True)
    dispatcher = make_dispatcher(sandbox, fleet)
    for _ in range(4):
        payload, source = request()
        events = decoded(handle(dispatcher, payload, source), topics.EVENTS)
        assert events[-1]["event"] == "sent" and events[-1]["provider"] == "sendgrid"
        for failed in (e for e in events if e["event"] == "attempt_failed"):
            assert failed["provider"] == "mailgun" and failed["outcome"] == "transient"
            assert '"cause":"network"' in failed["blob"]


def test_failing_providers_move_the_mail_up_the_ladder_until_it_is_exhausted(fleet, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, error_rate=1, status=503)
    dispatcher = make_dispatcher(sandbox, fleet, failures=100)
    payload, source = request()
    first = handle(dispatcher, payload, source)
    assert kinds(first) == ["dispatched", "attempt_failed", "dispatched", "attempt_failed", "retry_scheduled"]
    [retry] = [o for o in first if o.topic == topics.retry_topic(0)]

    waited = time.monotonic()
    second = handle(dispatcher, retry.value, Source(retry.topic, 0, 1, 0))
    assert time.monotonic() - waited >= DELAYS[0] * 0.5, "a retry waits until it is due"
    assert kinds(second)[-1] == "retry_scheduled"
    [retry] = [o for o in second if o.topic == topics.retry_topic(1)]

    last = handle(dispatcher, retry.value, Source(retry.topic, 0, 1, 0))
    assert kinds(last)[-1] == "dead_lettered"
    [letter] = decoded(last, topics.DEAD)
    assert letter["outcome"] == "exhausted" and "retry levels" in letter["reason"]
    assert codec.decode(letter["payload"])[1]["id"] == codec.decode(payload)[1]["id"]


def test_with_every_breaker_open_the_mail_waits_at_its_level_instead_of_dying(fleet, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, error_rate=1, status=503)
    dispatcher = make_dispatcher(sandbox, fleet, failures=1)
    [retry] = [o for o in handle(dispatcher, *request()) if o.topic == topics.retry_topic(0)]
    assert dispatcher.health.states() == {"mailgun": "open", "sendgrid": "open"}
    for _ in range(3):
        outputs = handle(dispatcher, retry.value, Source(retry.topic, 0, 1, 0))
        assert kinds(outputs) == ["retry_scheduled"], "no attempt, no climb"
        [retry] = [o for o in outputs if o.topic == topics.retry_topic(0)]


def test_a_retried_mail_is_delivered_once_a_provider_recovers(fleet, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, error_rate=1, status=503)
    dispatcher = make_dispatcher(sandbox, fleet)
    payload, source = request()
    [retry] = [o for o in handle(dispatcher, payload, source) if o.topic == topics.retry_topic(0)]
    sandbox.clear_faults()
    dispatcher = make_dispatcher(sandbox, fleet)
    assert kinds(handle(dispatcher, retry.value, Source(retry.topic, 0, 1, 0))) == ["dispatched", "sent"]


def test_a_permanent_error_dead_letters_without_touching_the_breaker(fleet, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, reject_recipients=["bounce"])
    dispatcher = make_dispatcher(sandbox, fleet)
    for _ in range(3):
        payload, source = request("bounce@example.com")
        outputs = handle(dispatcher, payload, source)
        assert kinds(outputs) == ["dispatched", "attempt_failed", "dead_lettered"]
        assert decoded(outputs, topics.DEAD)[0]["outcome"] == "permanent"
    assert dispatcher.health.states() == {"mailgun": "closed", "sendgrid": "closed"}


def test_a_provider_refusing_our_credentials_is_never_tried_again_for_the_mail(fleet, sandbox):
    dispatcher = make_dispatcher(sandbox, fleet, keys={"MAILGUN_API_KEY": "wrong", "SENDGRID_API_KEY": "wrong"})
    payload, source = request()
    outputs = handle(dispatcher, payload, source)
    assert kinds(outputs) == ["dispatched", "attempt_failed", "dispatched", "attempt_failed", "dead_lettered"]
    assert all(e["outcome"] == "provider_failure" for e in decoded(outputs, topics.EVENTS)[1:4:2])
    assert decoded(outputs, topics.DEAD)[0]["outcome"] == "no_provider"
    assert dispatcher.health.states() == {"mailgun": "open", "sendgrid": "open"}


@pytest.mark.parametrize("retry_ambiguous, expected", [
    (True, ["dispatched", "attempt_failed", "dispatched", "attempt_failed", "retry_scheduled"]),
    (False, ["dispatched", "attempt_failed", "dead_lettered"]),
])
def test_an_ambiguous_timeout_follows_the_configured_policy(fleet, sandbox, retry_ambiguous, expected):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, timeout=True)
    dispatcher = make_dispatcher(sandbox, fleet, retry_ambiguous)
    outputs = handle(dispatcher, *request())
    assert kinds(outputs) == expected
    assert decoded(outputs, topics.EVENTS)[1]["outcome"] == "ambiguous"
    assert dispatcher.health.states() == {"mailgun": "closed", "sendgrid": "closed"}


@pytest.mark.parametrize("payload, reason", [
    (b"", "empty"),
    (b"\x01\x00\x00\x00\x01abc", "magic byte"),
    (b"\x00\x00\x00\x00\x63abc", "unknown schema id 99"),
])
def test_undecodable_records_are_dead_lettered_with_their_position(fleet, sandbox, payload, reason):
    source = Source(topics.REQUESTS, 3, 42, 0)
    outputs = handle(make_dispatcher(sandbox, fleet), payload, source, key=b"k1")
    [letter] = decoded(outputs, topics.DEAD)
    assert reason in letter["reason"] and letter["payload"] == payload
    assert (letter["source_partition"], letter["source_offset"], letter["mail_id"]) == (3, 42, "k1")
    assert kinds(outputs) == ["rejected", "dead_lettered"]


def test_a_record_on_the_wrong_topic_is_dead_lettered(fleet, sandbox):
    payload, _ = request()
    source = Source(topics.retry_topic(0), 0, 5, 0)
    outputs = handle(make_dispatcher(sandbox, fleet), payload, source)
    [letter] = decoded(outputs, topics.DEAD)
    assert "do not belong on mail.retry.0" in letter["reason"] and letter["outcome"] == "malformed"


def test_an_oversized_record_still_fits_in_its_dead_letter(fleet, sandbox):
    payload = b"\x01" + b"x" * (2 * 1024 * 1024)
    outputs = handle(make_dispatcher(sandbox, fleet), payload, Source(topics.REQUESTS, 0, 9, 0))
    [letter] = decoded(outputs, topics.DEAD)
    assert len(letter["payload"]) == MAX_DEAD_PAYLOAD and "cut to" in letter["reason"]
    assert all(len(o.value) < 1_000_000 for o in outputs)


def test_a_redelivered_record_of_a_sent_mail_is_never_sent_again(fleet, sandbox):
    dispatcher = make_dispatcher(sandbox, fleet)
    payload, source = request()
    assert kinds(handle(dispatcher, payload, source))[-1] == "sent"
    restarted = make_dispatcher(sandbox, fleet)
    again = handle(restarted, payload, source)
    assert kinds(again) == ["duplicate"]
    assert sum(sandbox.received(codec.decode(payload)[1]["subject"]).values()) == 1


def test_two_records_of_one_mail_handled_side_by_side_send_it_once(fleet, sandbox):
    sandbox.set_faults("mailgun", latency_ms=300)
    sandbox.set_faults("sendgrid", latency_ms=300)
    worker = make_dispatcher(sandbox, fleet)
    payload, source = request()

    async def both() -> list[list[Output]]:
        return await asyncio.gather(*(worker.dispatcher.handle(payload, None, source) for _ in range(2)))

    results = fleet.run(both())
    assert sorted(kinds(r)[-1] for r in results) == ["duplicate", "sent"]
    assert sum(sandbox.received(codec.decode(payload)[1]["subject"]).values()) == 1


def test_a_send_cut_short_by_a_dead_worker_is_reported_ambiguous(fleet, sandbox):
    payload, source = request()
    mail_id = codec.decode(payload)[1]["id"]
    crashed = fleet.ledger("crashed-worker")
    fleet.run(crashed.record(mail_id, SENDING, "mailgun", until=int(time.time() * 1000) - 1))
    outputs = handle(make_dispatcher(sandbox, fleet), payload, source)
    events = decoded(outputs, topics.EVENTS)
    assert [e["event"] for e in events] == ["attempt_failed", "dispatched", "sent"]
    assert events[0]["outcome"] == "ambiguous" and events[0]["provider"] == "mailgun"
    assert "crashed-worker" in events[0]["blob"]


def test_a_send_still_under_way_elsewhere_is_waited_for_then_skipped(fleet, sandbox):
    payload, source = request()
    mail_id = codec.decode(payload)[1]["id"]
    other = fleet.ledger("other-worker")
    fleet.run(other.record(mail_id, SENDING, "sendgrid", until=int(time.time() * 1000) + 30_000))
    worker = make_dispatcher(sandbox, fleet)

    async def finish_elsewhere() -> None:
        await asyncio.sleep(0.5)
        await other.record(mail_id, "sent", "sendgrid", "msg-1")

    async def scenario() -> list[Output]:
        outputs, _ = await asyncio.gather(worker.dispatcher.handle(payload, None, source), finish_elsewhere())
        return outputs

    assert kinds(fleet.run(scenario())) == ["duplicate"]
    assert sum(sandbox.received(codec.decode(payload)[1]["subject"]).values()) == 0


def test_a_replayed_dead_letter_is_sent_but_a_plain_redelivery_is_not(fleet, sandbox):
    sandbox.set_faults("mailgun", reject_recipients=["bounce"])
    sandbox.set_faults("sendgrid", reject_recipients=["bounce"])
    worker = make_dispatcher(sandbox, fleet)
    payload, source = request("bounce@example.com")
    assert kinds(handle(worker, payload, source))[-1] == "dead_lettered"
    assert kinds(handle(worker, payload, source)) == ["duplicate"]
    sandbox.clear_faults()
    replay = codec.decode(payload)[1] | {"replayed_at": int(time.time() * 1000) + 1}
    assert kinds(handle(worker, codec.encode("mercury.MailRequest", replay), source))[-1] == "sent"


def test_a_mail_due_later_waits_on_a_schedule_topic(fleet, sandbox):
    worker = make_dispatcher(sandbox, fleet)
    payload, source = request()
    record = codec.decode(payload)[1]
    later = codec.encode("mercury.MailRequest", record | {"send_at": int(time.time() * 1000) + 45_000})
    outputs = handle(worker, later, source)
    assert kinds(outputs) == ["scheduled"]
    [hop] = [o for o in outputs if o.topic.startswith(topics.SCHEDULE_PREFIX)]
    assert hop.topic == topics.schedule_topic(30)
    assert sum(sandbox.received(record["subject"]).values()) == 0

    due = codec.encode("mercury.MailRequest", record | {"send_at": int(time.time() * 1000) + 300})
    written_earlier = Source(topics.schedule_topic(1), 0, 1, int(time.time() * 1000) - 5_000)
    assert kinds(handle(worker, due, written_earlier)) == ["dispatched", "sent"]
    assert sum(sandbox.received(record["subject"]).values()) == 1


def test_a_429_fails_over_and_throttles_the_provider(fleet, sandbox):
    sandbox.set_faults("mailgun", error_rate=1, status=429, retry_after=5)
    worker = make_dispatcher(sandbox, fleet, failures=1)
    for _ in range(3):
        events = decoded(handle(worker, *request()), topics.EVENTS)
        assert events[-1]["event"] == "sent" and events[-1]["provider"] == "sendgrid"
    assert worker.health.states()["mailgun"] == "closed", "a 429 slows a provider down, it does not open it"
    assert len([m for m in sandbox.messages("mailgun")]) == 0


def test_a_mail_that_only_met_throttled_providers_waits_at_its_level(fleet, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, error_rate=1, status=429, retry_after=5)
    worker = make_dispatcher(sandbox, fleet)
    [retry] = [o for o in handle(worker, *request()) if o.topic.startswith(topics.RETRY_PREFIX)]
    again = handle(worker, retry.value, Source(retry.topic, 0, 1, 0))
    assert kinds(again) == ["retry_scheduled"]
    assert [o.topic for o in again if o.topic.startswith(topics.RETRY_PREFIX)] == [topics.retry_topic(0)]


def test_another_mail_under_an_id_already_sent_is_rejected_visibly_and_not_sent(fleet, sandbox):
    worker = make_dispatcher(sandbox, fleet)
    first, source = request()
    record = codec.decode(first)[1]
    second = codec.encode("mercury.MailRequest", record | {"subject": f"other-{record['id']}", "created_at": 1})
    assert kinds(handle(worker, first, source)) == ["dispatched", "sent"]

    [rejected] = decoded(handle(worker, second, source), topics.EVENTS)
    assert rejected["event"] == "rejected" and "Idempotency-Key" in rejected["blob"]
    assert "different request" in rejected["blob"]
    assert sum(sandbox.received(f"other-{record['id']}").values()) == 0
    again = codec.encode("mercury.MailRequest", record | {"created_at": 2})
    assert kinds(handle(worker, again, source)) == ["duplicate"], "the same mail written again is a re-delivery"


def test_two_mails_under_one_id_at_once_end_in_one_send_and_one_rejection(fleet, sandbox):
    worker = make_dispatcher(sandbox, fleet)
    first, source = request()
    record = codec.decode(first)[1]
    second = codec.encode("mercury.MailRequest", record | {"subject": f"other-{record['id']}"})

    async def both() -> list[list[Output]]:
        return await asyncio.gather(worker.dispatcher.handle(first, None, source),
                                    worker.dispatcher.handle(second, None, source))

    assert sorted(kinds(outputs)[-1] for outputs in fleet.run(both())) == ["rejected", "sent"]
    assert sum(sandbox.received(record["subject"]).values()) + sum(
        sandbox.received(f"other-{record['id']}").values()) == 1
