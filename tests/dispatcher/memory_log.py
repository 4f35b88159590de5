"""The broker's shared-state topics in memory, so the delivery policy can be tested without a broker.

Every published record is kept per topic and handed, in publish order, to every follower of its topic, as the
replicas hand a real broker's records to the health board and the ledger. A record reaches the followers on the
loop's next turn, after its publish returned: a broker acknowledges a write before anyone reads it back.
"""
import asyncio
from collections import defaultdict
from collections.abc import Callable

from schemas.kafka.producer import Output

Apply = Callable[[str, bytes], None]


class MemoryLog:
    def __init__(self) -> None:
        self.records: dict[str, list[Output]] = defaultdict(list)
        self._followers: dict[str, list[Apply]] = defaultdict(list)

    def follow(self, topic: str, apply: Apply) -> None:
        """Hand `apply` the topic's records so far, then every later one."""
        for record in self.records[topic]:
            apply(record.key, record.value)
        self._followers[topic].append(apply)

    async def publish(self, outputs: list[Output]) -> None:
        for output in outputs:
            self.records[output.topic].append(output)
        asyncio.get_running_loop().call_soon(self._hand_over, list(outputs))

    def _hand_over(self, outputs: list[Output]) -> None:
        for output in outputs:
            for apply in self._followers[output.topic]:
                apply(output.key, output.value)
