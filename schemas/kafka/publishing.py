"""Writing records that must not be dropped (the dispatcher's outputs, shared state): a write is retried until acked.

A record refused for good (too large for the broker) is not retried, or the partition behind it would stop for
good: once the rest are acknowledged, the caller is told which were refused and decides what stands in for them."""
import asyncio
import logging

from schemas.kafka.producer import AsyncProducer, Output, RecordRefused

log = logging.getLogger("mercury.schemas.kafka.publishing")
BACKOFF_MAX_S = 5.0


class RecordsRefused(Exception):
    """Records the broker will never take, each with its refusal; every other record was acknowledged."""

    def __init__(self, refused: list[tuple[Output, RecordRefused]]) -> None:
        super().__init__(f"{len(refused)} record(s) refused for good: {refused[0][1]}")
        self.refused = refused


class Publisher:
    def __init__(self, producer: AsyncProducer) -> None:
        self._producer = producer

    async def publish(self, outputs: list[Output]) -> None:
        """Retry what the broker did not acknowledge until it did: giving up here would lose the mail. Raises
        RecordsRefused, after every other record was acknowledged, if some can never be written."""
        pending, backoff, refused = outputs, 0.1, []
        while pending:
            results = await self._producer.send_all(pending)
            refused += [(o, r) for o, r in zip(pending, results) if isinstance(r, RecordRefused)]
            failed = [(o, r) for o, r in zip(pending, results) if r is not None and not isinstance(r, RecordRefused)]
            pending = [o for o, _ in failed]
            if pending:
                log.error("publish_failed",
                          extra={"records": len(pending), "error": str(failed[0][1]), "retry_in_s": round(backoff, 1)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        if refused:
            raise RecordsRefused(refused)

    def close(self) -> None:
        self._producer.close()
