"""The Faust application: one agent on the request topic and one per retry level, all thin.

Each agent hands records to `Dispatcher.handle` and publishes what it returns; an offset is
acknowledged only after every record it produced was acknowledged by the broker.
"""
import asyncio
import logging

import faust
from faust import EventT, StreamT

from dispatcher.breakers import BreakerBoard
from dispatcher.config import DispatcherConfig
from dispatcher.delivery import Dispatcher, Output
from dispatcher.jobs import Source
from dispatcher.pipeline import run_ordered
from dispatcher.sender import ThreadedSender
from providers.config import load_providers
from schemas.producer import AsyncProducer
from schemas import topics

log = logging.getLogger("mercury.dispatcher")
PUBLISH_BACKOFF_MAX_S = 5.0


def create_app(config: DispatcherConfig) -> faust.App:
    services = load_providers()
    board = BreakerBoard([s.name for s in services], config.breaker_failures, config.breaker_recovery_s)
    sender = ThreadedSender(config.send_threads)
    dispatcher = Dispatcher(services, board, sender, config.retry_delays, config.retry_ambiguous, config.worker_id)

    app = faust.App(
        "mercury-dispatcher",
        broker=f"kafka://{config.bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        # Tansu holds a group join for half the session timeout: a short one makes workers start in seconds.
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=config.session_timeout_s / 6,
        broker_rebalance_timeout=config.session_timeout_s,
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        stream_wait_empty=False,
    )
    producer = AsyncProducer(config.bootstrap, name=config.worker_id)

    async def publish(outputs: list[Output]) -> None:
        """Retry what the broker did not acknowledge until it did: giving up here would lose the mail."""
        pending, backoff = outputs, 0.1
        while pending:
            results = await asyncio.gather(*(producer.send(o.topic, o.key, o.value) for o in pending),
                                           return_exceptions=True)
            failed = [(o, r) for o, r in zip(pending, results) if isinstance(r, Exception)]
            pending = [o for o, _ in failed]
            if pending:
                log.error("event=publish_failed records=%d error=%s retry_in_s=%.1f", len(pending), failed[0][1], backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, PUBLISH_BACKOFF_MAX_S)

    async def process(event: EventT) -> None:
        message = event.message
        source = Source(message.topic, message.partition, message.offset, int(message.timestamp * 1000))
        await publish(await dispatcher.handle(message.value, message.key, source))

    async def consume(stream: StreamT) -> None:
        await run_ordered(stream, process, config.max_in_flight)

    app.agent(app.topic(topics.REQUESTS), name="requests")(consume)
    for level in range(len(config.retry_delays)):
        app.agent(app.topic(topics.retry_topic(level)), name=f"retry-{level}")(consume)

    @app.on_after_configured.connect
    def log_config(*_args: object, **_kwargs: object) -> None:
        log.info("event=dispatcher_configured worker=%s providers=%s retry_delays=%s", config.worker_id,
                 ",".join(s.name for s in services), config.retry_delays)

    return app
