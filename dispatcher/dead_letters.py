"""Dead letters: read what the pipeline gave up on from the dead-letter topic, and put those mails back into it.
`mercury dead` (deploy/cli/dead.py) is the operator's command on top of this library.

A replayed mail keeps its id (so its history stays one history) and gets `replayed_at`, which the dispatcher
compares with the letter's `dead_at` to know an operator put it back; a `replayed` event records the step.
A mail dead-lettered several times stands for its latest letter only: older letters carry an older state.
Each replay also leaves a receipt on the dead-letter topic itself (a letter with outcome `replayed` and no
payload), so a mail whose latest record is a receipt is not replayed again, however long after: the
dispatchers' ledger remembers minutes, the receipt lasts as long as the letters it stands after.

Reading to the end of the topic: Tansu, the local broker, answers a ListOffsets request for the latest
offset with the base offset of the partition's last record batch plus one, so it understates the end
whenever that batch holds more than one record (measured: 20 records whose last batch holds offsets 10-19
reported 11). confluent-kafka's `query_watermark_offsets`, `get_watermark_offsets(cached=False)` and
`AdminClient.list_offsets` all send that request, so a reader that stops at their answer misses letters.
The high watermark in Fetch responses is right, so the reader never asks for offsets: it assigns every
partition from the beginning with `enable.partition.eof` and stops once librdkafka reported the end of each
one, which librdkafka derives from those Fetch responses. The same reader is right on Apache Kafka.
"""
import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from schemas import codec, registry, topics
from schemas.events import encode_event, iso_utc, make_event, now_ms
from schemas.kafka.producer import AsyncProducer, BrokerUnavailable
from schemas.validation import InvalidMail, check_mail_id
from schemas.vocabulary import EventType

log = logging.getLogger("mercury.dead_letters")
# librdkafka retries a refused connection every few milliseconds, a line each; the command's own error names
# the failure, so `mercury dead` lets the client's lines show only with MERCURY_LOG_LEVEL=DEBUG.
kafka_log = logging.getLogger("mercury.dead_letters.kafka")

CREATED_BY = "dead-letters"
LETTER_SCHEMA = registry.DEAD_LETTER
REQUEST_SCHEMA = registry.MAIL_REQUEST
# Records awaiting the broker's acknowledgement at once; bounds memory on a large replay.
MAX_IN_FLIGHT = 500
PROGRESS_EVERY_S = 1.0
# The outcome of a replay receipt: what the mail's latest record on the topic says once it was put back.
RECEIPT = str(EventType.REPLAYED)


class ReadError(RuntimeError):
    """The topic could not be read to its end; nothing based on a partial read may be replayed."""


class NotReplayable(ValueError):
    """The letter's payload is not a whole mail (malformed input, or cut to fit the topic), or its id is not its
    tenant's to use."""


@dataclass(frozen=True)
class Letter:
    """One mercury.DeadLetter with its own position on the dead-letter topic."""

    mail_id: str
    reason: str
    outcome: str
    source_topic: str
    source_partition: int
    source_offset: int
    payload: bytes
    dead_at: int
    partition: int
    offset: int

    @classmethod
    def from_message(cls, message: Message) -> "Letter":
        """Raises codec.DecodeError when the record is not a DeadLetter."""
        name, record = codec.decode(message.value())
        if name != LETTER_SCHEMA:
            raise codec.DecodeError(f"a {name} record, not a {LETTER_SCHEMA}")
        return cls(
            mail_id=record["mail_id"], reason=record["reason"], outcome=record["outcome"],
            source_topic=record["source_topic"], source_partition=record["source_partition"],
            source_offset=record["source_offset"], payload=record["payload"], dead_at=record["dead_at"],
            partition=message.partition(), offset=message.offset(),
        )

    @property
    def source(self) -> str:
        return f"{self.source_topic}:{self.source_partition}:{self.source_offset}"

    @property
    def is_receipt(self) -> bool:
        return self.outcome == RECEIPT

    def mail_record(self) -> dict:
        """The MailRequest record the letter carries; raises NotReplayable naming what is wrong."""
        try:
            name, record = codec.decode(self.payload)
        except codec.DecodeError as err:
            raise NotReplayable(str(err)) from err
        if name != REQUEST_SCHEMA:
            raise NotReplayable(f"payload is a {name}, not a {REQUEST_SCHEMA}")
        try:
            check_mail_id(record["id"], record["tenant"], record["origin"])
        except InvalidMail as err:
            # Refused again as it is, and its `replayed` event would land on the mail that id names.
            raise NotReplayable(f"{err}; the producer must publish it again under its tenant's prefix") from err
        return record

    def replayable(self) -> bool:
        try:
            self.mail_record()
        except NotReplayable:
            return False
        return True


@dataclass(frozen=True)
class Selection:
    """Which letters an operator means; empty criteria select everything. `since` <= dead_at < `until`."""

    reasons: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    since: int | None = None
    until: int | None = None

    @property
    def everything(self) -> bool:
        return not (self.reasons or self.ids or self.since is not None or self.until is not None)

    def matches(self, letter: Letter) -> bool:
        return (
            (not self.reasons or letter.outcome in self.reasons)
            and (not self.ids or letter.mail_id in self.ids)
            and (self.since is None or letter.dead_at >= self.since)
            and (self.until is None or letter.dead_at < self.until)
        )


@dataclass
class ReadStats:
    letters: int = 0
    unreadable: int = 0
    partitions: int = 0
    partitions_done: int = 0


Progress = Callable[[ReadStats], None]


class LetterReader:
    """Reads every letter on the dead-letter topic once, each partition up to the end it had when reached.

    It joins no consumer group and commits nothing, so listing never disturbs anyone else's position.
    """

    def __init__(self, bootstrap: str, timeout_s: float = 30.0, on_progress: Progress | None = None) -> None:
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._on_progress = on_progress
        self.stats = ReadStats()

    def __iter__(self) -> Iterator[Letter]:
        consumer = Consumer({
            "bootstrap.servers": self._bootstrap,
            "group.id": CREATED_BY,
            "client.id": CREATED_BY,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "logger": kafka_log,
        })
        try:
            partitions = self._partitions(consumer)
            consumer.assign([TopicPartition(topics.DEAD, p, OFFSET_BEGINNING) for p in partitions])
            yield from self._read(consumer, set(partitions))
        finally:
            consumer.close()

    def _partitions(self, consumer: Consumer) -> list[int]:
        try:
            metadata = consumer.list_topics(topics.DEAD, timeout=self._timeout_s)
        except KafkaException as err:
            raise ReadError(f"no answer from the broker at {self._bootstrap}: {err.args[0].str()}") from err
        topic = metadata.topics.get(topics.DEAD)
        if topic is None or topic.error is not None:
            raise ReadError(f"topic {topics.DEAD} is not readable: {topic.error.str() if topic else 'missing'}")
        self.stats.partitions = len(topic.partitions)
        return sorted(topic.partitions)

    def _read(self, consumer: Consumer, remaining: set[int]) -> Iterator[Letter]:
        last_record = last_report = time.monotonic()
        while remaining:
            message = consumer.poll(0.5)
            now = time.monotonic()
            if self._on_progress and now - last_report >= PROGRESS_EVERY_S:
                self._on_progress(self.stats)
                last_report = now
            if message is None:
                if now - last_record > self._timeout_s:
                    raise ReadError(f"no record and no end of partition for {self._timeout_s:g} s "
                                    f"({len(remaining)} partitions unfinished)")
                continue
            last_record = now
            if message.error() is None:
                letter = self._letter(message)
                if letter is not None:
                    yield letter
            elif message.error().code() == KafkaError._PARTITION_EOF:
                remaining.discard(message.partition())
                self.stats.partitions_done = self.stats.partitions - len(remaining)
            else:
                self._fail_on(message.error())

    def _letter(self, message: Message) -> Letter | None:
        try:
            letter = Letter.from_message(message)
        except codec.DecodeError as err:
            self.stats.unreadable += 1
            log.warning("unreadable_letter",
                        extra={"partition": message.partition(), "offset": message.offset(), "reason": str(err)})
            return None
        self.stats.letters += 1
        return letter

    @staticmethod
    def _fail_on(err: KafkaError) -> None:
        """librdkafka retries transient errors by itself; anything else means the read is incomplete."""
        if err.fatal() or not err.retriable():
            raise ReadError(f"reading {topics.DEAD} failed: {err.str()}")
        log.warning("read_error_retried", extra={"code": err.name(), "reason": err.str()})


@dataclass
class Choice:
    """The letters a replay acts on: the latest letter of each mail, if it matches and the mail was not
    replayed since (its latest record a receipt)."""

    letters: list[Letter]
    superseded: int
    already_replayed: int = 0


def latest_first(letter: Letter) -> tuple[int, int, int]:
    """The order a replay goes in: oldest letter first."""
    return letter.dead_at, letter.partition, letter.offset


def written_after(letter: Letter, other: Letter) -> bool:
    """Letters and receipts of one mail share its key, hence a partition, where the offset orders them; the
    times they carry come from different hosts' clocks."""
    if letter.partition == other.partition:
        return letter.offset > other.offset
    return latest_first(letter) > latest_first(other)


def choose(letters: Iterable[Letter], selection: Selection) -> Choice:
    """Keeps one letter per mail in memory, so a replay's footprint grows with mails, not letters."""
    latest: dict[str, Letter] = {}
    matched: dict[str, int] = {}
    for letter in letters:
        if not letter.is_receipt and selection.matches(letter):
            matched[letter.mail_id] = matched.get(letter.mail_id, 0) + 1
        known = latest.get(letter.mail_id)
        if known is None or written_after(letter, known):
            latest[letter.mail_id] = letter
    chosen = sorted((x for x in latest.values() if not x.is_receipt and selection.matches(x)), key=latest_first)
    replayed = sum(1 for mail_id in matched if latest[mail_id].is_receipt)
    return Choice(chosen, sum(matched.values()) - len(chosen), replayed)


@dataclass
class ReplayReport:
    replayed: list[Letter] = field(default_factory=list)
    not_replayable: list[tuple[Letter, str]] = field(default_factory=list)
    failed: list[tuple[Letter, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def replayed_record(letter: Letter, replayed_at: int) -> dict:
    """The mail exactly as the letter holds it, every field kept, stamped with the replay time."""
    return {**letter.mail_record(), "replayed_at": replayed_at}


def replay_time(letter: Letter) -> int:
    """Now, yet always after the letter's dead_at: the dispatcher tells a replay by replayed_at > dead_at,
    and the letter may come from a host whose clock runs ahead of this one."""
    now = now_ms()
    if now <= letter.dead_at:
        log.warning("replay_clock_behind", extra={"mail": letter.mail_id, "dead_at": letter.dead_at, "now": now})
        return letter.dead_at + 1
    return now


def replayed_event(mail_id: str, letter: Letter, replayed_at: int) -> bytes:
    """The letter's outcome goes where the dead_lettered event put it, so both read alike in the history."""
    return encode_event(make_event(
        mail_id, EventType.REPLAYED, CREATED_BY, outcome=letter.outcome, created_at=replayed_at,
        reason=letter.reason, dead_at=letter.dead_at, replayed_at=replayed_at,
        topic=topics.DEAD, partition=letter.partition, offset=letter.offset,
        source_topic=letter.source_topic, source_partition=letter.source_partition,
        source_offset=letter.source_offset,
    ))


def receipt(letter: Letter, replayed_at: int) -> bytes:
    """What stands after the letter on the topic once its mail was put back; its source is the letter itself."""
    return codec.encode(LETTER_SCHEMA, {
        "mail_id": letter.mail_id, "reason": f"replayed at {iso_utc(replayed_at)}", "outcome": RECEIPT,
        "source_topic": topics.DEAD, "source_partition": letter.partition, "source_offset": letter.offset,
        "payload": b"", "dead_at": replayed_at,
    })


def replay(bootstrap: str, letters: list[Letter], timeout_s: float = 30.0,
           on_done: Callable[[Letter, str | None], None] | None = None) -> ReplayReport:
    """Publish each replayable letter's mail to the requests topic, then its `replayed` event; returns only
    once the broker acknowledged (or refused) every write. `on_done` hears of each letter as it settles."""
    report = ReplayReport()
    replayable = []
    for letter in letters:
        try:
            letter.mail_record()
            replayable.append(letter)
        except NotReplayable as err:
            report.not_replayable.append((letter, str(err)))
    if replayable:
        asyncio.run(_publish_all(bootstrap, replayable, timeout_s, report, on_done))
    return report


async def _publish_all(bootstrap: str, letters: list[Letter], timeout_s: float, report: ReplayReport,
                       on_done: Callable[[Letter, str | None], None] | None) -> None:
    producer = AsyncProducer(bootstrap, delivery_timeout_ms=int(timeout_s * 1000), name=CREATED_BY)
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def one(letter: Letter) -> None:
        async with slots:
            error = await _publish(producer, letter)
        if error is None:
            report.replayed.append(letter)
        else:
            report.failed.append((letter, error))
        if on_done:
            on_done(letter, error)

    try:
        await asyncio.gather(*(one(letter) for letter in letters))
    finally:
        producer.close(timeout_s)


async def _publish(producer: AsyncProducer, letter: Letter) -> str | None:
    """The mail first: an event must never claim a replay the broker did not take. Returns the error."""
    replayed_at = replay_time(letter)
    record = replayed_record(letter, replayed_at)
    try:
        await producer.send(topics.REQUESTS, record["id"], codec.encode(REQUEST_SCHEMA, record))
    except BrokerUnavailable as err:
        log.error("replay_failed", extra={"mail": letter.mail_id, "reason": str(err)})
        return f"mail not replayed: {err}"
    try:
        await producer.send(topics.EVENTS, record["id"], replayed_event(record["id"], letter, replayed_at))
    except BrokerUnavailable as err:
        log.error("replay_event_failed", extra={"mail": letter.mail_id, "reason": str(err)})
        return f"mail replayed, but its replayed event was not acknowledged: {err}"
    try:
        await producer.send(topics.DEAD, record["id"], receipt(letter, replayed_at))
    except BrokerUnavailable as err:
        log.error("replay_receipt_failed", extra={"mail": letter.mail_id, "reason": str(err)})
        return f"mail replayed, but its receipt was not acknowledged (a later replay would send it again): {err}"
    log.info("replayed", extra={"mail": letter.mail_id, "replayed_at": replayed_at, "outcome": letter.outcome})
    return None
