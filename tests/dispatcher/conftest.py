"""Shared provider health and the delivery ledger run on the real broker; each test gets its own topics."""
import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from dispatcher.health import FleetHealth
from dispatcher.ledger import DeliveryLedger
from schemas.kafka.producer import AsyncProducer
from schemas.kafka.publishing import Publisher
from schemas.kafka.replica import TopicReplica


class Fleet:
    """Workers' health boards and ledgers on fresh topics, all driven from one event loop."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.loop = asyncio.new_event_loop()
        self.health_topic = self._create_topic("health", 1)
        self.ledger_topic = self._create_topic("ledger", 4)
        self.publisher = self.run(self._publisher())
        self.replicas: list[TopicReplica] = []

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coroutine)

    async def _publisher(self) -> Publisher:
        return Publisher(AsyncProducer(self.bootstrap))

    def _create_topic(self, kind: str, partitions: int) -> str:
        name = f"test.{kind}.{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(15)
        return name

    def _follow(self, topic: str, instance: str, apply) -> TopicReplica:
        replica = TopicReplica(self.bootstrap, topic, instance, apply, self.publisher.publish)
        self.replicas.append(replica)
        self.run(replica.caught_up())
        return replica

    def health(self, providers: list[str], failures: int = 3, recovery_s: float = 30, lease_s: float = 5,
               instance: str | None = None) -> FleetHealth:
        instance = instance or f"worker-{uuid.uuid4().hex[:6]}"
        board = FleetHealth(providers, instance, failures, recovery_s, lease_s, self.publisher.publish,
                            topic=self.health_topic)
        self._follow(self.health_topic, instance, board.apply)
        return board

    def ledger(self, instance: str | None = None) -> DeliveryLedger:
        instance = instance or f"worker-{uuid.uuid4().hex[:6]}"
        ledger = DeliveryLedger(instance, self.publisher.publish, 3600, topic=self.ledger_topic)
        ledger.follow(self._follow(self.ledger_topic, instance, ledger.apply))
        return ledger

    async def _cancel_pending(self) -> None:
        """Background publishes a test left running end here, not with a closed loop."""
        pending = asyncio.all_tasks() - {asyncio.current_task()}
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def close(self) -> None:
        self.run(self._cancel_pending())
        for replica in self.replicas:
            replica.close()
        self.publisher.close()
        self.loop.close()


@pytest.fixture
def fleet(bootstrap: str) -> Iterator[Fleet]:
    running = Fleet(bootstrap)
    yield running
    running.close()
