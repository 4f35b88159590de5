"""A partition given up in a rebalance, or at shutdown: no send starts after it, and the sends under way end
(their ledger entries written) before the worker lets go. Real sandbox over HTTP, ledger on the broker."""
import asyncio
import time
import uuid

from test_delivery import decoded, handle, kinds, make_dispatcher, request

from dispatcher.jobs import Source
from dispatcher.ledger import SENDING, SENT
from dispatcher.ownership import Ownership
from schemas import codec, topics
from schemas.kafka.publishing import Output

RETRY = topics.retry_topic(0)


def retry_record(due_in_s: float) -> tuple[bytes, Source]:
    payload, _ = request()
    mail = codec.decode(payload)[1]
    record = codec.encode("mercury.RetryRecord", {"mail": mail, "level": 0, "excluded": [], "last_error": "503",
                                                  "due_at": int((time.time() + due_in_s) * 1000)})
    return record, Source(RETRY, 0, 7, 0)


def subject(payload: bytes) -> str:
    name, record = codec.decode(payload)
    return (record["mail"] if name == "mercury.RetryRecord" else record)["subject"]


def test_a_record_waiting_for_its_due_time_is_abandoned_when_its_partition_is_revoked(fleet, sandbox):
    worker = make_dispatcher(sandbox, fleet)
    ownership = worker.dispatcher.ownership
    payload, source = retry_record(due_in_s=5)
    lease = ownership.lease(source.topic, source.partition)

    async def revoke_while_waiting() -> tuple[list[Output], float]:
        started = time.monotonic()
        handling = asyncio.ensure_future(worker.dispatcher.handle(payload, None, source, lease))
        await asyncio.sleep(0.3)
        ownership.revoke([(source.topic, source.partition)])
        return await handling, time.monotonic() - started

    outputs, took_s = fleet.run(revoke_while_waiting())
    assert outputs == [] and lease.abandoned
    assert took_s < 2, "the wait ends with the revocation, not at the due time"
    assert not lease.may_ack()
    time.sleep(5)
    assert sum(sandbox.received(subject(payload)).values()) == 0


def test_a_record_waiting_for_a_rate_limit_slot_is_not_sent_after_its_partition_is_revoked(fleet, sandbox):
    worker = make_dispatcher(sandbox, fleet, rates={"mailgun": 0.2, "sendgrid": 0.2})
    ownership = worker.dispatcher.ownership
    for _ in range(2):  # each takes one provider's only send for the next five seconds
        assert kinds(handle(worker, *request()))[-1] == "sent"
    payload, source = request()
    lease = ownership.lease(source.topic, source.partition)

    async def revoke_while_throttled() -> list[Output]:
        handling = asyncio.ensure_future(worker.dispatcher.handle(payload, None, source, lease))
        await asyncio.sleep(0.5)
        assert not handling.done(), "the mail waits for a free send"
        ownership.revoke([(source.topic, source.partition)])
        return await handling

    assert fleet.run(revoke_while_throttled()) == [] and lease.abandoned
    time.sleep(5)
    assert sum(sandbox.received(subject(payload)).values()) == 0


def test_a_revocation_waits_for_the_send_under_way_and_its_sent_entry(fleet, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, latency_ms=300)
    worker = make_dispatcher(sandbox, fleet)
    ownership = worker.dispatcher.ownership
    payload, source = request()
    mail_id = codec.decode(payload)[1]["id"]
    lease = ownership.lease(source.topic, source.partition)
    next_owner = fleet.ledger("next-owner")

    async def revoke_mid_send() -> tuple[list[Output], str]:
        handling = asyncio.ensure_future(worker.dispatcher.handle(payload, None, source, lease))
        while (entry := worker.dispatcher._ledger.lookup(mail_id)) is None or entry.state != SENDING:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.15)  # the `sending` entry acknowledged, the request is at the provider
        ownership.revoke([(source.topic, source.partition)])
        assert ownership.sends == 1
        await ownership.settled()
        await next_owner.ready()
        seen = next_owner.lookup(mail_id).state
        return await handling, seen

    outputs, seen_by_next_owner = fleet.run(revoke_mid_send())
    assert seen_by_next_owner == SENT, "the next owner's barrier comes after the previous owner's last entry"
    assert kinds(outputs) == ["dispatched", "sent"], "the send's events are still published"
    assert not lease.abandoned and not lease.may_ack(), "but the record is the next owner's to acknowledge"
    assert sum(sandbox.received(subject(payload)).values()) == 1


def test_a_revoked_worker_reports_the_attempt_it_made_and_starts_no_failover(fleet, sandbox):
    sandbox.set_faults("mailgun", error_rate=1, status=503, latency_ms=300)
    sandbox.set_faults("sendgrid", error_rate=1, status=503, latency_ms=300)
    worker = make_dispatcher(sandbox, fleet, failures=100)
    ownership = worker.dispatcher.ownership
    payload, source = request()
    mail_id = codec.decode(payload)[1]["id"]
    lease = ownership.lease(source.topic, source.partition)

    async def revoke_mid_send() -> list[Output]:
        handling = asyncio.ensure_future(worker.dispatcher.handle(payload, None, source, lease))
        while (entry := worker.dispatcher._ledger.lookup(mail_id)) is None or entry.state != SENDING:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.15)  # the request is at the provider
        ownership.revoke([(source.topic, source.partition)])
        return await handling

    outputs = fleet.run(revoke_mid_send())
    assert kinds(outputs) == ["dispatched", "attempt_failed"], "no second provider, no retry record"
    assert not [o for o in outputs if o.topic.startswith(topics.RETRY_PREFIX)]
    assert lease.abandoned


def test_stopping_acknowledges_finished_records_up_to_the_first_one_left_unfinished(fleet):
    async def scenario() -> list[bool]:
        ownership = Ownership()
        done, unfinished, done_after = (ownership.lease(RETRY, 0) for _ in range(3))
        other_partition = ownership.lease(RETRY, 1)
        ownership.stop()
        unfinished.abandon()
        late = ownership.lease(RETRY, 2)
        return [done.may_ack(), unfinished.may_ack(), done_after.may_ack(), other_partition.may_ack(),
                late.may_send]

    assert fleet.run(scenario()) == [True, False, False, True, False]


def test_a_dead_letter_is_published_before_the_dead_entry(fleet, sandbox):
    sandbox.set_faults("mailgun", reject_recipients=["bounce"])
    sandbox.set_faults("sendgrid", reject_recipients=["bounce"])
    worker = make_dispatcher(sandbox, fleet)
    ledger = worker.dispatcher._ledger
    outputs = handle(worker, *request(f"bounce-{uuid.uuid4().hex[:6]}@example.com"))
    first, then = ledger.entries_last(outputs)
    assert [o.topic for o in first if o.topic == topics.DEAD] == [topics.DEAD]
    assert [codec.decode(o.value)[1]["state"] for o in then] == ["dead"]
    assert decoded(outputs, topics.EVENTS)[-1]["event"] == "dead_lettered"


def test_a_send_still_waiting_for_a_slot_when_its_partition_is_revoked_never_starts(fleet, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, latency_ms=400)
    worker = make_dispatcher(sandbox, fleet, concurrency=1)
    ownership = worker.dispatcher.ownership
    running, running_source = request()
    queued, _ = request()
    queued_source = Source(topics.REQUESTS, 1, 1, 0)
    running_id, queued_id = codec.decode(running)[1]["id"], codec.decode(queued)[1]["id"]
    leases = ownership.lease(topics.REQUESTS, 0), ownership.lease(topics.REQUESTS, 1)

    async def sending(mail_id: str) -> None:
        while (entry := worker.dispatcher._ledger.lookup(mail_id)) is None or entry.state != SENDING:
            await asyncio.sleep(0.01)

    async def revoke_while_queued() -> list[list[Output]]:
        first = asyncio.ensure_future(worker.dispatcher.handle(running, None, running_source, leases[0]))
        await sending(running_id)
        await asyncio.sleep(0.15)  # the `sending` entry acknowledged: the first send holds the only slot
        second = asyncio.ensure_future(worker.dispatcher.handle(queued, None, queued_source, leases[1]))
        await sending(queued_id)
        ownership.revoke([(topics.REQUESTS, 1)])
        await ownership.settled()
        return [await first, await second]

    first, second = fleet.run(revoke_while_queued())
    assert kinds(first) == ["dispatched", "sent"]
    assert second == [] and leases[1].abandoned, "no attempt is reported: none was made"
    assert worker.dispatcher._ledger.lookup(queued_id).state == "failed", "the next owner need not wait for it"
    assert sum(sandbox.received(subject(queued)).values()) == 0
