"""Requests refused for their key's rate, recorded without a write per request.

A client over its rate may send thousands of requests a second; a `rejected` event for each would turn its
flood into as many broker writes and ClickHouse rows. Each refusal is counted in memory (one entry per key
that was refused since the last summary, so memory is bounded by the keys in use) and in the metrics, and
every `SUMMARY_S` seconds each such key gets one `rejected` event saying how many were refused and when.
"""
import asyncio
import logging
import uuid
from dataclasses import dataclass

from ingest import metrics
from ingest.keys.api_key import ApiKey
from schemas import topics
from schemas.events import encode_event, make_event, now_ms
from schemas.kafka.producer import AsyncProducer, BrokerUnavailable
from schemas.vocabulary import EventType

log = logging.getLogger("mercury.ingest.keys.over_rate")
SUMMARY_S = 10.0
FIELD = "authorization"


@dataclass
class _Refusals:
    tenant: str
    count: int
    first_ms: int
    last_ms: int


class OverRateTally:
    def __init__(self, producer: AsyncProducer) -> None:
        self._producer = producer
        self._refusals: dict[str, _Refusals] = {}

    def refused(self, key: ApiKey, count: int = 1) -> None:
        """Count a request (or `count` mails of a batch) refused for `key`'s rate; never waits."""
        metrics.OVER_RATE.labels(key.tenant).inc(count)
        now = now_ms()
        if (seen := self._refusals.get(key.id)) is None:
            self._refusals[key.id] = _Refusals(key.tenant, count, now, now)
        else:
            seen.count, seen.last_ms = seen.count + count, now

    async def run(self, every_s: float = SUMMARY_S) -> None:
        """Summarise every `every_s` seconds until cancelled, then once more for what was counted last."""
        try:
            while True:
                await asyncio.sleep(every_s)
                await self.flush()
        finally:
            await self.flush()

    async def flush(self) -> None:
        """One `rejected` event per key refused since the last flush; logged, not retried, if the broker is away
        (the metrics hold the counts either way)."""
        refusals, self._refusals = self._refusals, {}
        for key_id, seen in refusals.items():
            reason = (f"this API key was over its request rate: {seen.count} request(s) or batch mail(s) answered 429 "
                      f"between {seen.first_ms} and {seen.last_ms} ms since the epoch")
            event = make_event(uuid.uuid4().hex, EventType.REJECTED, "ingest", reason=reason, field=FIELD,
                               tenant=seen.tenant, key=key_id, count=seen.count, first_ms=seen.first_ms,
                               last_ms=seen.last_ms)
            try:
                await self._producer.send(topics.EVENTS, event["mail"], encode_event(event))
            except BrokerUnavailable as err:
                log.error("over_rate_summary_unrecorded",
                          extra={"key": key_id, "tenant": seen.tenant, "count": seen.count, "error": str(err)})
