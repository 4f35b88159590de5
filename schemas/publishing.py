"""Writing records that must not be dropped (the dispatcher's outputs, shared state): a write is retried until acked."""
import asyncio
import logging
from dataclasses import dataclass

from schemas.producer import AsyncProducer

log = logging.getLogger("mercury.schemas.publishing")
BACKOFF_MAX_S = 5.0


@dataclass(frozen=True)
class Output:
    topic: str
    key: str
    value: bytes
    partition: int = -1


class Publisher:
    def __init__(self, producer: AsyncProducer) -> None:
        self._producer = producer

    async def publish(self, outputs: list[Output]) -> None:
        """Retry what the broker did not acknowledge until it did: giving up here would lose the mail."""
        pending, backoff = outputs, 0.1
        while pending:
            results = await asyncio.gather(
                *(self._producer.send(o.topic, o.key, o.value, o.partition) for o in pending), return_exceptions=True)
            failed = [(o, r) for o, r in zip(pending, results) if isinstance(r, Exception)]
            pending = [o for o, _ in failed]
            if pending:
                log.error("event=publish_failed records=%d error=%s retry_in_s=%.1f", len(pending), failed[0][1], backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def close(self) -> None:
        self._producer.close()
