"""Counting a chaos case from the real parts: what the providers received, what is on `mail.dead`, what the
pipeline reported in ClickHouse. Nothing here trusts the pipeline's own word for a delivery."""
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from clickhouse_driver import Client
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from sandbox_client import Sandbox

from analytics.lifecycle import EVENT_SEQUENCE, params
from dispatcher.dead_letters import RECEIPT
from schemas import codec, topics

# Where each provider keeps the Mercury mail id it was sent (Mailgun's `v:` variable, SendGrid's custom_args).
MERCURY_ID_FIELD = {"mailgun": "mercury-id", "sendgrid": "mercury_id"}
DISPATCHER_GROUP = "mercury-dispatcher"
SINK_GROUP = "mercury-analytics"
SETTLE_TIMEOUT_S = 240.0
READ_TIMEOUT_S = 60.0
EXPLAIN_AT_MOST = 5


def received(sandbox: Sandbox) -> Counter[str]:
    """How many times the providers (all of them together) received each Mercury mail id."""
    counts: Counter[str] = Counter()
    for provider in sandbox.ports:
        for message in sandbox.messages(provider):
            mail_id = (message.get("custom") or {}).get(MERCURY_ID_FIELD[provider])
            if mail_id:
                counts[mail_id] += 1
    return counts


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "enable.partition.eof": True})


def _partitions(consumer: Consumer, topic: str) -> list[TopicPartition]:
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    return [TopicPartition(topic, p) for p in (metadata.partitions if metadata else {})]


def _read_to_end(bootstrap: str, starts: list[TopicPartition]) -> list[Message]:
    """Records from each given offset to the end of its partition.

    The end is where librdkafka reports end-of-partition, which it takes from Fetch responses: the local
    broker answers ListOffsets (every watermark query) with the base offset of the partition's last record
    batch plus one, short of the end whenever that batch holds several records."""
    if not starts:
        return []
    consumer = _consumer(bootstrap, f"chaos-reader-{uuid.uuid4().hex}")
    try:
        consumer.assign(starts)
        unfinished = {(tp.topic, tp.partition) for tp in starts}
        records: list[Message] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while unfinished:
            assert time.monotonic() < deadline, f"{sorted(unfinished)} not read to the end in {READ_TIMEOUT_S:.0f}s"
            for message in consumer.consume(1000, 0.5):
                error = message.error()
                if error is None:
                    records.append(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    unfinished.discard((message.topic(), message.partition()))
        return records
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str) -> list[Message]:
    """Every record on `topic` now, each partition read from its start to its end."""
    consumer = _consumer(bootstrap, f"chaos-reader-{uuid.uuid4().hex}")
    try:
        partitions = _partitions(consumer, topic)
    finally:
        consumer.close()
    return _read_to_end(bootstrap, [TopicPartition(topic, tp.partition, OFFSET_BEGINNING) for tp in partitions])


def dead_letters(bootstrap: str) -> dict[str, dict]:
    """Every letter on `mail.dead` by mail id (the record's key when it could not be decoded); replay receipts
    are not letters."""
    letters = {}
    for message in read_topic(bootstrap, topics.DEAD):
        _, letter = codec.decode(message.value())
        if letter["outcome"] != RECEIPT:
            letters[letter["mail_id"]] = letter
    return letters


def events_on_kafka(bootstrap: str) -> list[dict]:
    """Every event record on `mail.events`, decoded: what the sink should have written to ClickHouse."""
    return [codec.decode(message.value())[1] for message in read_topic(bootstrap, topics.EVENTS)]


def lag(bootstrap: str, group: str, topic_names: Iterable[str]) -> int:
    """Records on these topics past the group's committed offsets (a partition it never committed counts whole)."""
    consumer = _consumer(bootstrap, group)
    try:
        wanted = [tp for topic in topic_names for tp in _partitions(consumer, topic)]
        committed = consumer.committed(wanted, timeout=10) if wanted else []
    finally:
        consumer.close()
    starts = [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
              for tp in committed]
    return len(_read_to_end(bootstrap, starts))


def settle(sandbox: Sandbox, bootstrap: str, accepted: list[str], delay_topics: list[str],
           timeout: float = SETTLE_TIMEOUT_S) -> float:
    """Wait until every accepted mail was received by a provider or dead-lettered and neither the dispatchers
    (on mail.requests and the delay topics) nor the sink have a record left to read, so that later re-sends
    and missing rows show in the counts. Returns the seconds waited; after `timeout` it returns anyway and
    the counts say what is missing."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        done = received(sandbox).keys() | dead_letters(bootstrap).keys()
        if (all(mail_id in done for mail_id in accepted)
                and lag(bootstrap, DISPATCHER_GROUP, [topics.REQUESTS, *delay_topics]) == 0
                and lag(bootstrap, SINK_GROUP, [topics.REQUESTS, topics.EVENTS]) == 0):
            break
        time.sleep(2)
    return time.monotonic() - started


def reported_ambiguous(client: Client, ids: Iterable[str]) -> set[str]:
    """Mails the pipeline itself reported as possibly sent twice: an ambiguous attempt, or a duplicate event."""
    ids = tuple(ids)
    if not ids:
        return set()
    rows = client.execute(
        "SELECT DISTINCT mail FROM events FINAL WHERE mail IN %(ids)s AND ((event = %(event_attempt_failed)s"
        " AND outcome = %(outcome_ambiguous)s) OR event = %(event_duplicate)s)", params(ids=ids))
    return {mail for (mail,) in rows}


def sent_reported(client: Client, ids: Iterable[str]) -> set[str]:
    """Mails with a `sent` event in ClickHouse: those the pipeline says a provider accepted."""
    ids = tuple(ids)
    if not ids:
        return set()
    rows = client.execute("SELECT DISTINCT mail FROM events FINAL WHERE mail IN %(ids)s AND event = %(event_sent)s",
                          params(ids=ids))
    return {mail for (mail,) in rows}


def dispatches(client: Client, provider: str, since_ms: int, until_ms: int) -> dict[str, tuple[int, int]]:
    """Per worker: its last dispatch to `provider` in [since_ms, until_ms) and how many it made there."""
    rows = client.execute(
        "SELECT created_by, max(created_at_ms), count() FROM events FINAL WHERE event = %(event_dispatched)s"
        " AND provider = %(provider)s AND created_at_ms >= %(since_ms)s AND created_at_ms < %(until_ms)s"
        " GROUP BY created_by", params(provider=provider, since_ms=since_ms, until_ms=until_ms))
    return {worker: (last, count) for worker, last, count in rows}


def failed_attempts(client: Client, provider: str, status: int, since_ms: int, until_ms: int) -> int:
    """Attempts on `provider` answered with `status` in [since_ms, until_ms)."""
    [(count,)] = client.execute(
        "SELECT count() FROM events FINAL WHERE event = %(event_attempt_failed)s AND provider = %(provider)s"
        " AND status = %(status)s AND created_at_ms >= %(since_ms)s AND created_at_ms < %(until_ms)s",
        params(provider=provider, status=str(status), since_ms=since_ms, until_ms=until_ms))
    return count


def trace(client: Client, mail_id: str) -> str:
    """A mail's events as one line (event/provider/outcome@worker), for failure messages."""
    rows = client.execute(f"SELECT event, provider, outcome, created_by FROM events FINAL WHERE mail = %(mail)s"
                          f" ORDER BY {EVENT_SEQUENCE}", params(mail=mail_id))
    return " ".join(f"{event}/{provider or '-'}/{outcome or '-'}@{worker}" for event, provider, outcome, worker in rows)


@dataclass(frozen=True)
class Tally:
    """The five counts of one case (plus the duplicates the pipeline itself reported as ambiguous sends)."""

    case: str
    accepted: frozenset[str]
    delivered: frozenset[str]
    dead_lettered: frozenset[str]
    duplicated: frozenset[str]
    ambiguous: frozenset[str]
    receipts: Counter[str] = field(default_factory=Counter)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def lost(self) -> frozenset[str]:
        return self.accepted - self.delivered - self.dead_lettered

    @property
    def unexplained_duplicates(self) -> frozenset[str]:
        return self.duplicated - self.ambiguous

    @property
    def passed(self) -> bool:
        return not self.lost and not self.unexplained_duplicates

    def line(self) -> str:
        counts = (f"chaos case={self.case} accepted={len(self.accepted)} delivered={len(self.delivered)} "
                  f"dead_lettered={len(self.dead_lettered)} lost={len(self.lost)} "
                  f"duplicated={len(self.duplicated)} ambiguous={len(self.ambiguous)}")
        return " ".join([counts, *(f"{key}={value}" for key, value in self.extra.items())])

    def explain(self, client: Client) -> str:
        """Why the case failed, with the ClickHouse trace of a few of the mails concerned."""
        parts = [self.line()]
        if self.lost:
            parts.append(f"{len(self.lost)} accepted mail(s) neither received by a provider nor dead-lettered:")
            parts += [f"  {m}: {trace(client, m) or 'no events in ClickHouse'}"
                      for m in sorted(self.lost)[:EXPLAIN_AT_MOST]]
        if self.unexplained_duplicates:
            parts.append(f"{len(self.unexplained_duplicates)} mail(s) received more than once with no ambiguous "
                         "attempt reported: a re-send the pipeline should have prevented (a durable sent-set):")
            parts += [f"  {m} received {self.receipts[m]}x: {trace(client, m)}"
                      for m in sorted(self.unexplained_duplicates)[:EXPLAIN_AT_MOST]]
        return "\n".join(parts)


def tally(case: str, accepted: Iterable[str], sandbox: Sandbox, bootstrap: str, client: Client,
          **extra: object) -> Tally:
    accepted = frozenset(accepted)
    receipts = received(sandbox)
    duplicated = frozenset(m for m in accepted if receipts[m] > 1)
    return Tally(
        case=case,
        accepted=accepted,
        delivered=frozenset(m for m in accepted if receipts[m]),
        dead_lettered=frozenset(accepted & dead_letters(bootstrap).keys()),
        duplicated=duplicated,
        ambiguous=frozenset(reported_ambiguous(client, duplicated)),
        receipts=Counter({m: receipts[m] for m in accepted}),
        extra=extra,
    )
