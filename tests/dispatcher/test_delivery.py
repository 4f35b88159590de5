"""The delivery policy against the real sandbox over HTTP, without Kafka: records in, records out."""
import asyncio
import random
import time
import uuid

import pytest
from sandbox_client import Sandbox

from dispatcher.breakers import BreakerBoard
from dispatcher.delivery import Dispatcher, Output
from dispatcher.jobs import Source
from dispatcher.sender import ThreadedSender
from providers.config import load_providers
from schemas import codec, topics

DELAYS = (0.3, 0.6)


def make_dispatcher(sandbox: Sandbox, retry_ambiguous: bool = True, keys: dict[str, str] | None = None,
                    failures: int = 2) -> Dispatcher:
    env = {f"{name.upper()}_BASE_URL": sandbox.url(name) for name in sandbox.ports}
    env["MERCURY_PROVIDER_READ_TIMEOUT"] = "0.5"
    env.update(keys or {})
    services = load_providers(env)
    board = BreakerBoard([s.name for s in services], failures=failures, recovery_s=30)
    return Dispatcher(services, board, ThreadedSender(4), DELAYS, retry_ambiguous, "test-worker", random.Random(7))


def request(recipient: str = "bob@example.com", origin: str = "http") -> tuple[bytes, Source]:
    mail_id = uuid.uuid4().hex
    payload = codec.encode("mercury.MailRequest", {
        "id": mail_id, "sender": "alice@example.com", "recipients": [recipient], "subject": f"s-{mail_id}",
        "content": "hello", "created_at": int(time.time() * 1000), "origin": origin})
    return payload, Source(topics.REQUESTS, 0, 1, 0)


def handle(dispatcher: Dispatcher, payload: bytes, source: Source, key: bytes | None = None) -> list[Output]:
    return asyncio.run(dispatcher.handle(payload, key, source))


def decoded(outputs: list[Output], topic: str) -> list[dict]:
    return [codec.decode(o.value)[1] for o in outputs if o.topic == topic]


def kinds(outputs: list[Output]) -> list[str]:
    return [e["event"] for e in decoded(outputs, topics.EVENTS)]


def test_an_accepted_send_yields_dispatched_then_sent(sandbox):
    payload, source = request()
    outputs = handle(make_dispatcher(sandbox), payload, source)
    assert kinds(outputs) == ["dispatched", "sent"]
    sent = decoded(outputs, topics.EVENTS)[1]
    assert sent["provider"] in sandbox.ports and '"message_id"' in sent["blob"]
    assert sum(sandbox.received(codec.decode(payload)[1]["subject"]).values()) == 1


def test_a_mail_from_an_outside_producer_gets_one_accepted_event_whatever_the_redeliveries(sandbox):
    dispatcher = make_dispatcher(sandbox)
    payload, source = request(origin="kafka")
    first, again = handle(dispatcher, payload, source), handle(dispatcher, payload, source)
    assert kinds(first)[0] == "accepted"
    assert decoded(first, topics.EVENTS)[0]["id"] == decoded(again, topics.EVENTS)[0]["id"]


def test_a_down_provider_fails_over_at_once(sandbox):
    sandbox.set_faults("mailgun", down=True)
    dispatcher = make_dispatcher(sandbox)
    for _ in range(4):
        payload, source = request()
        events = decoded(handle(dispatcher, payload, source), topics.EVENTS)
        assert events[-1]["event"] == "sent" and events[-1]["provider"] == "sendgrid"
        for failed in (e for e in events if e["event"] == "attempt_failed"):
            assert failed["provider"] == "mailgun" and failed["outcome"] == "transient"
            assert '"cause":"network"' in failed["blob"]


def test_all_providers_failing_puts_the_mail_on_the_ladder_until_it_is_exhausted(sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, error_rate=1, status=503)
    dispatcher = make_dispatcher(sandbox, failures=1)
    payload, source = request()
    first = handle(dispatcher, payload, source)
    assert kinds(first) == ["dispatched", "attempt_failed", "dispatched", "attempt_failed", "retry_scheduled"]
    [retry] = [o for o in first if o.topic == topics.retry_topic(0)]

    waited = time.monotonic()
    second = handle(dispatcher, retry.value, Source(retry.topic, 0, 1, 0))
    assert time.monotonic() - waited >= DELAYS[0] * 0.5, "a retry waits until it is due"
    # Both breakers are open now (threshold 1): the mail moves up the ladder without an attempt.
    assert kinds(second) == ["retry_scheduled"]
    [retry] = [o for o in second if o.topic == topics.retry_topic(1)]

    last = handle(dispatcher, retry.value, Source(retry.topic, 0, 1, 0))
    assert kinds(last) == ["dead_lettered"]
    [letter] = decoded(last, topics.DEAD)
    assert letter["outcome"] == "exhausted" and "retry levels" in letter["reason"]
    assert codec.decode(letter["payload"])[1]["id"] == codec.decode(payload)[1]["id"]


def test_a_retried_mail_is_delivered_once_a_provider_recovers(sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, error_rate=1, status=503)
    dispatcher = make_dispatcher(sandbox)
    payload, source = request()
    [retry] = [o for o in handle(dispatcher, payload, source) if o.topic == topics.retry_topic(0)]
    sandbox.clear_faults()
    dispatcher = make_dispatcher(sandbox)
    assert kinds(handle(dispatcher, retry.value, Source(retry.topic, 0, 1, 0))) == ["dispatched", "sent"]


def test_a_permanent_error_dead_letters_without_touching_the_breaker(sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, reject_recipients=["bounce"])
    dispatcher = make_dispatcher(sandbox)
    for _ in range(3):
        payload, source = request("bounce@example.com")
        outputs = handle(dispatcher, payload, source)
        assert kinds(outputs) == ["dispatched", "attempt_failed", "dead_lettered"]
        assert decoded(outputs, topics.DEAD)[0]["outcome"] == "permanent"
    assert dispatcher.breakers.states() == {"mailgun": "closed", "sendgrid": "closed"}


def test_a_provider_refusing_our_credentials_is_never_tried_again_for_the_mail(sandbox):
    dispatcher = make_dispatcher(sandbox, keys={"MAILGUN_API_KEY": "wrong", "SENDGRID_API_KEY": "wrong"})
    payload, source = request()
    outputs = handle(dispatcher, payload, source)
    assert kinds(outputs) == ["dispatched", "attempt_failed", "dispatched", "attempt_failed", "dead_lettered"]
    assert all(e["outcome"] == "provider_failure" for e in decoded(outputs, topics.EVENTS)[1:4:2])
    assert decoded(outputs, topics.DEAD)[0]["outcome"] == "no_provider"
    assert dispatcher.breakers.states() == {"mailgun": "open", "sendgrid": "open"}


@pytest.mark.parametrize("retry_ambiguous, expected", [
    (True, ["dispatched", "attempt_failed", "dispatched", "attempt_failed", "retry_scheduled"]),
    (False, ["dispatched", "attempt_failed", "dead_lettered"]),
])
def test_an_ambiguous_timeout_follows_the_configured_policy(sandbox, retry_ambiguous, expected):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, timeout=True)
    dispatcher = make_dispatcher(sandbox, retry_ambiguous)
    outputs = handle(dispatcher, *request())
    assert kinds(outputs) == expected
    assert decoded(outputs, topics.EVENTS)[1]["outcome"] == "ambiguous"
    assert dispatcher.breakers.states() == {"mailgun": "closed", "sendgrid": "closed"}


@pytest.mark.parametrize("payload, reason", [
    (b"", "empty"),
    (b"\x01\x00\x00\x00\x01abc", "magic byte"),
    (b"\x00\x00\x00\x00\x07abc", "unknown schema id 7"),
])
def test_undecodable_records_are_dead_lettered_with_their_position(sandbox, payload, reason):
    source = Source(topics.REQUESTS, 3, 42, 0)
    outputs = handle(make_dispatcher(sandbox), payload, source, key=b"k1")
    [letter] = decoded(outputs, topics.DEAD)
    assert reason in letter["reason"] and letter["payload"] == payload
    assert (letter["source_partition"], letter["source_offset"], letter["mail_id"]) == (3, 42, "k1")
    assert kinds(outputs) == ["rejected", "dead_lettered"]


def test_a_record_on_the_wrong_topic_is_dead_lettered(sandbox):
    payload, _ = request()
    source = Source(topics.retry_topic(0), 0, 5, 0)
    outputs = handle(make_dispatcher(sandbox), payload, source)
    [letter] = decoded(outputs, topics.DEAD)
    assert "do not belong on mail.retry.0" in letter["reason"] and letter["outcome"] == "malformed"


def test_an_oversized_record_still_fits_in_its_dead_letter(sandbox):
    payload = b"\x01" + b"x" * (2 * 1024 * 1024)
    outputs = handle(make_dispatcher(sandbox), payload, Source(topics.REQUESTS, 0, 9, 0))
    [letter] = decoded(outputs, topics.DEAD)
    assert len(letter["payload"]) == 512 * 1024 and "cut to" in letter["reason"]
    assert all(len(o.value) < 1_000_000 for o in outputs)
