"""Whether ClickHouse holds exactly what the pipeline wrote to Kafka: every event once, every accepted mail
with its `accepted` and its terminal event, and the operators' questions counting nothing twice."""
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from clickhouse_driver import Client

from analytics.lifecycle import params
from analytics.questions import delivery_time_stats, provider_stats
from schemas import codec, topics
from schemas.vocabulary import EventType
from tests.chaos.accounting import events_on_kafka, read_topic


@dataclass(frozen=True)
class Completeness:
    kafka_events: int
    clickhouse_events: int
    missing: int
    unexpected: int
    doubled: int
    raw_rows: int
    mails_missing: int
    without_accepted_or_terminal: int
    stats_sent: int
    kafka_sent: int
    stats_delivered: int
    kafka_delivered: int

    def line(self, case: str) -> str:
        return " ".join([f"chaos case={case} check=clickhouse",
                         *(f"{key}={value}" for key, value in asdict(self).items())])

    def problems(self) -> list[str]:
        found = []
        if self.missing or self.unexpected:
            found.append(f"{self.missing} event(s) on mail.events missing in ClickHouse, {self.unexpected} in "
                         "ClickHouse that are not on mail.events")
        if self.doubled:
            found.append(f"{self.doubled} event row(s) counted twice under FINAL")
        if self.mails_missing or self.without_accepted_or_terminal:
            found.append(f"{self.mails_missing} accepted mail(s) without a mails row, "
                         f"{self.without_accepted_or_terminal} without an accepted or a terminal event")
        if self.stats_sent != self.kafka_sent:
            found.append(f"provider_stats counts {self.stats_sent} sent, mail.events holds {self.kafka_sent}")
        if self.stats_delivered != self.kafka_delivered:
            found.append(f"delivery_time_stats counts {self.stats_delivered} mails, mail.events and "
                         f"mail.requests say {self.kafka_delivered}")
        return found


def _accepted_at(bootstrap: str, events: list[dict]) -> dict[str, int]:
    """When each mail was accepted, as the questions define it: its request or its `accepted` event."""
    accepted: dict[str, int] = {}
    for message in read_topic(bootstrap, topics.REQUESTS):
        try:
            _, mail = codec.decode(message.value())
        except codec.DecodeError:
            continue
        accepted[mail["id"]] = min(accepted.get(mail["id"], mail["created_at"]), mail["created_at"])
    for event in events:
        if event["event"] == EventType.ACCEPTED:
            accepted[event["mail"]] = min(accepted.get(event["mail"], event["created_at"]), event["created_at"])
    return accepted


def _delivered_since(bootstrap: str, events: list[dict], since_ms: int) -> int:
    sent = {e["mail"] for e in events if e["event"] == EventType.SENT}
    return sum(1 for mail, at in _accepted_at(bootstrap, events).items() if mail in sent and at >= since_ms)


def _lifecycle_gaps(client: Client, ids: tuple[str, ...]) -> int:
    rows = client.execute(
        "SELECT mail FROM events FINAL WHERE mail IN %(ids)s GROUP BY mail"
        " HAVING countIf(event = %(event_accepted)s) > 0 AND countIf(event IN %(terminal)s) > 0",
        params(ids=ids))
    return len(ids) - len(rows)


def completeness(bootstrap: str, client: Client, accepted: Iterable[str], since_ms: int) -> Completeness:
    """Compare ClickHouse with mail.events and mail.requests for these mails, and the questions' counts
    since `since_ms` with the same counts taken from Kafka."""
    ids = tuple(accepted)
    wanted = set(ids)
    events = events_on_kafka(bootstrap)
    on_kafka = {e["id"] for e in events if e["mail"] in wanted}
    in_clickhouse = {row[0] for row in client.execute("SELECT id FROM events FINAL WHERE mail IN %(ids)s",
                                                      {"ids": ids})}
    [(final_rows, distinct)] = client.execute(
        "SELECT count(), uniqExact(id) FROM events FINAL WHERE mail IN %(ids)s", {"ids": ids})
    [(raw_rows,)] = client.execute("SELECT count() FROM events WHERE mail IN %(ids)s", {"ids": ids})
    [(mails,)] = client.execute("SELECT uniqExact(id) FROM mails FINAL WHERE id IN %(ids)s", {"ids": ids})
    return Completeness(
        kafka_events=len(on_kafka),
        clickhouse_events=len(in_clickhouse),
        missing=len(on_kafka - in_clickhouse),
        unexpected=len(in_clickhouse - on_kafka),
        doubled=final_rows - distinct,
        raw_rows=raw_rows,
        mails_missing=len(ids) - mails,
        without_accepted_or_terminal=_lifecycle_gaps(client, ids),
        stats_sent=sum(p["sent"] for p in provider_stats(client, since_ms)),
        kafka_sent=len({e["id"] for e in events if e["event"] == EventType.SENT and e["created_at"] >= since_ms}),
        stats_delivered=delivery_time_stats(client, since_ms)["count"],
        kafka_delivered=_delivered_since(bootstrap, events, since_ms),
    )
