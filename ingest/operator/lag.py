"""Consumer lag: how far each of Mercury's consumer groups is behind the end of each topic it reads.

Lag is what the dashboard shows as queue depth: for the dispatchers, mails accepted or due for a retry but
not yet handled; for the analytics sink, records not yet in ClickHouse. Per partition it is the end offset
minus the group's committed offset; a partition the group never committed counts from its first record
(both groups start from the earliest offset).

The local broker (Tansu 0.6.0) answers the ListOffsets request behind `get_watermark_offsets` with the
base offset of the partition's last record batch plus one, short of the real end when that batch holds
several records (see `dispatcher/dead_letters.py`). On it, lag is undercounted by up to one batch per
partition, and a committed offset past that reported end counts as no lag. Apache Kafka reports the end
exactly.
"""
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from analytics.rows import ROUTES
from analytics.sink import SinkConfig
from ingest.api_root import API
from ingest.errors import GatewayError
from ingest.keys.auth import OPERATOR
from ingest.operator import openapi as docs
from schemas import topics

log = logging.getLogger("mercury.ingest.operator.lag")
# librdkafka logs every refused connection, several per request; one `lag_unavailable` line says it instead.
kafka_log = logging.getLogger("mercury.ingest.operator.lag.kafka")
kafka_log.setLevel(logging.CRITICAL)
PATH = f"{API}/analytics/lag"
# The dispatcher's Faust app id (dispatcher/app.py) is its consumer group id.
DISPATCHER_GROUP = "mercury-dispatcher"
BUDGET_S = 5.0
CALL_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ConsumerGroup:
    group: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    committed: int | None
    start: int
    end: int

    @property
    def lag(self) -> int:
        """Records past the committed offset; never negative (the local broker may report an end short of it)."""
        position = self.start if self.committed is None else max(self.committed, self.start)
        return max(0, self.end - position)


class KafkaUnavailable(Exception):
    """The broker did not answer within the time budget; the cause is chained."""


def consumer_groups(env: Mapping[str, str] = os.environ) -> list[ConsumerGroup]:
    """Mercury's consumer groups and the topics each one reads, as their processes configure them."""
    return [
        ConsumerGroup(DISPATCHER_GROUP,
                      (topics.REQUESTS, *topics.retry_topics(env), *topics.schedule_topics())),
        ConsumerGroup(SinkConfig.from_env(env).group, tuple(ROUTES)),
    ]


def summarize(group: ConsumerGroup, offsets: list[PartitionOffsets], missing: set[str]) -> dict:
    """A group's lag per partition, summed per topic and for the group; `missing` topics do not exist."""
    topic_rows = []
    for topic in group.topics:
        partitions = sorted((o for o in offsets if o.topic == topic), key=lambda o: o.partition)
        topic_rows.append({
            "topic": topic,
            "missing": topic in missing,
            "lag": sum(p.lag for p in partitions),
            "partitions": [{"partition": p.partition, "committed": p.committed, "start": p.start, "end": p.end,
                            "lag": p.lag} for p in partitions],
        })
    return {"group": group.group, "lag": sum(t["lag"] for t in topic_rows), "topics": topic_rows}


class LagReader:
    """Reads committed and end offsets from the broker. Blocks for at most about BUDGET_S; raises
    KafkaUnavailable when the broker does not answer in that time."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def measure(self, groups: list[ConsumerGroup]) -> dict:
        deadline = time.monotonic() + BUDGET_S
        config = {"bootstrap.servers": self.bootstrap, "logger": kafka_log}
        admin = AdminClient(config)
        # Only asked for offsets: it never subscribes, so its group never exists on the broker.
        consumer = Consumer({**config, "group.id": f"mercury-lag-reader-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False})
        try:
            partitions, missing = self._partitions(admin, groups, deadline)
            ends = {(tp.topic, tp.partition): self._watermarks(consumer, tp, deadline)
                    for group_partitions in partitions.values() for tp in group_partitions}
            answer = []
            for group in groups:
                mine = [tp for topic in group.topics for tp in partitions.get(topic, [])]
                committed = self._committed(admin, group.group, mine, deadline)
                offsets = [PartitionOffsets(tp.topic, tp.partition, committed.get((tp.topic, tp.partition)),
                                            *ends[tp.topic, tp.partition]) for tp in mine]
                answer.append(summarize(group, offsets, missing))
            return {"groups": answer, "lag": sum(g["lag"] for g in answer)}
        except (KafkaException, TimeoutError) as err:
            raise KafkaUnavailable(_reason(err)) from err
        finally:
            consumer.close()

    @staticmethod
    def _partitions(admin: AdminClient, groups: list[ConsumerGroup],
                    deadline: float) -> tuple[dict[str, list[TopicPartition]], set[str]]:
        wanted = {topic for group in groups for topic in group.topics}
        metadata = admin.list_topics(timeout=_remaining(deadline)).topics
        partitions = {topic: [TopicPartition(topic, p) for p in sorted(metadata[topic].partitions)]
                      for topic in wanted if topic in metadata and metadata[topic].error is None}
        return partitions, wanted - partitions.keys()

    @staticmethod
    def _watermarks(consumer: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
        low, high = consumer.get_watermark_offsets(tp, timeout=_remaining(deadline), cached=False)
        return low, high

    @staticmethod
    def _committed(admin: AdminClient, group: str, partitions: list[TopicPartition],
                   deadline: float) -> dict[tuple[str, int], int]:
        """Committed offsets by (topic, partition); a partition without a commit is left out."""
        if not partitions:
            return {}
        request = ConsumerGroupTopicPartitions(group, partitions)
        timeout = _remaining(deadline)
        future = admin.list_consumer_group_offsets([request], request_timeout=timeout)[group]
        result = future.result(timeout=timeout)
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def _reason(err: Exception) -> str:
    first = err.args[0] if err.args else None
    return first.str() if isinstance(first, KafkaError) else str(err) or type(err).__name__


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise KafkaUnavailable(f"the broker did not answer within {BUDGET_S:.0f}s")
    return min(left, CALL_TIMEOUT_S)


def install(app: FastAPI, bootstrap: str) -> None:
    """Operators only: the lag names every consumer group and topic of the fleet."""
    api = APIRouter(tags=["analytics"])
    reader = LagReader(bootstrap)

    @api.get(PATH, **docs.LAG)
    def lag() -> Response:
        """Per consumer group, topic and partition: committed offset, end offset and the lag between them."""
        try:
            measured = reader.measure(consumer_groups())
        except KafkaUnavailable as err:
            log.warning("lag_unavailable", extra={"error": str(err)})
            raise GatewayError(503, f"Kafka is unavailable: {err}") from err
        return Response(orjson.dumps({"measured_at": int(time.time() * 1000), **measured}),
                        media_type="application/json")

    app.include_router(api, dependencies=[OPERATOR])
