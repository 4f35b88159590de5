"""How a record's outputs reach the broker: a record the broker refuses for good (larger than it takes) is
replaced, never retried forever (a retry record by the mail's dead letter, a letter by one without its payload;
a producer held to 20 kB), and a dead entry never goes out before its letter. The real broker and sandbox."""
import uuid

from test_delivery import make_dispatcher, request

from dispatcher.jobs import MAX_REASON_CHARS, Job, Source
from dispatcher.outputs import publish_outputs
from schemas import codec, topics
from schemas.kafka.producer import AsyncProducer
from schemas.kafka.publishing import Output, Publisher
from schemas.model import Mail
from tests.chaos.accounting import read_topic

LIMIT = 20_000


def letters_for(bootstrap: str, mail_id: str) -> list[dict]:
    return [codec.decode(m.value())[1] for m in read_topic(bootstrap, topics.DEAD) if m.key() == mail_id.encode()]


def small_publisher(fleet) -> Publisher:
    async def make() -> Publisher:
        return Publisher(AsyncProducer(fleet.bootstrap, max_record_bytes=LIMIT))
    return fleet.run(make())


def test_a_retry_record_too_large_for_the_broker_becomes_the_mails_dead_letter(fleet, sandbox):
    worker = make_dispatcher(sandbox, fleet)
    payload, source = request()
    record = codec.decode(payload)[1]
    record["content"] = "x" * (LIMIT - 1000 - len(payload))
    mail = Mail.from_record(record)
    assert len(codec.encode("mercury.MailRequest", mail.to_record())) < LIMIT, "the mail itself fits"
    retry = Job(mail, source).retry_record(0, 0, "e" * MAX_REASON_CHARS)
    assert len(retry) > LIMIT, "its retry record does not"

    fleet.run(publish_outputs([Output(topics.retry_topic(0), mail.id, retry)], source, small_publisher(fleet),
                              worker.dispatcher, worker.dispatcher._ledger))

    [letter] = letters_for(fleet.bootstrap, mail.id)
    assert letter["outcome"] == "permanent" and "mail.retry.0 record was refused" in letter["reason"]
    assert codec.decode(letter["payload"])[1]["id"] == mail.id, "the letter holds the mail, ready to replay"
    assert worker.dispatcher._ledger.lookup(mail.id).state == "dead"


def test_a_dead_letter_too_large_for_the_broker_is_kept_without_its_payload(fleet, sandbox):
    worker = make_dispatcher(sandbox, fleet)
    mail_id = uuid.uuid4().hex
    oversized = b"\x00" * (LIMIT + 1)
    outputs = fleet.run(worker.dispatcher.handle(oversized, mail_id.encode(), Source(topics.REQUESTS, 0, 3, 0)))
    assert [o.topic for o in outputs][0] == topics.DEAD

    fleet.run(publish_outputs(outputs, Source(topics.REQUESTS, 0, 3, 0), small_publisher(fleet), worker.dispatcher,
                              worker.dispatcher._ledger))

    [letter] = letters_for(fleet.bootstrap, mail_id)
    assert letter["payload"] == b"" and f"payload of {LIMIT + 1} bytes dropped" in letter["reason"]
    assert (letter["source_topic"], letter["source_offset"]) == (topics.REQUESTS, 3)


class Crashed(Exception):
    """The worker died: nothing more leaves it."""


class DiesAfterFirstPublish:
    """A publisher whose worker is killed right after its first publish was acknowledged."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self.calls = 0

    async def publish(self, outputs: list[Output]) -> None:
        self.calls += 1
        if self.calls > 1:
            raise Crashed()
        await self._publisher.publish(outputs)


def test_a_worker_killed_between_a_letter_and_its_dead_entry_leaves_the_letter_and_the_record(fleet, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, reject_recipients=["bounce"])
    first = make_dispatcher(sandbox, fleet)
    payload, source = request(f"bounce-{uuid.uuid4().hex[:6]}@example.com")
    mail_id = codec.decode(payload)[1]["id"]
    outputs = fleet.run(first.dispatcher.handle(payload, None, source))
    dying = DiesAfterFirstPublish(fleet.publisher)
    try:
        fleet.run(publish_outputs(outputs, source, dying, first.dispatcher, first.dispatcher._ledger))
    except Crashed:
        pass
    assert dying.calls == 2, "the letter went out, the dead entry did not"
    [letter] = letters_for(fleet.bootstrap, mail_id)
    assert codec.decode(letter["payload"])[1]["id"] == mail_id, "the letter is there, ready to replay"

    next_owner = make_dispatcher(sandbox, fleet)
    again = fleet.run(next_owner.dispatcher.handle(payload, None, source))
    events = [codec.decode(o.value)[1]["event"] for o in again if o.topic == topics.EVENTS]
    assert "duplicate" not in events and events[-1] == "dead_lettered", "the record is not taken as done"
