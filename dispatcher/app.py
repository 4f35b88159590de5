"""The Faust application: one agent on the request topic, one per retry level and per schedule topic.

Each agent hands records to `Dispatcher.handle` and publishes what it returns; an offset is
acknowledged only after every record it produced was acknowledged by the broker. Beside the agents,
each worker follows the health and ledger topics into memory and publishes a heartbeat, and follows the
provider registry and the configurations, applying each change as it is read; no record is handled before
both were read up to the worker's start, so a provider removed through the API never sends again.

A rebalance waits for this worker's sends under way (`dispatcher.ownership`), so the next owner of a partition
meets their ledger entries; SIGTERM does the same, then lets every finished record be acknowledged and
committed before the producer closes.
"""
import asyncio
import logging
import os
import uuid

import faust
from faust import EventT, StreamT

from dispatcher import kafka_driver
from dispatcher.config import DispatcherConfig
from dispatcher.delivery import Dispatcher
from dispatcher.health import FleetHealth
from dispatcher.jobs import Source
from dispatcher.ledger import DeliveryLedger
from dispatcher.live_settings import LiveSettings
from dispatcher.outputs import publish_outputs
from dispatcher.ownership import Lease, Ownership
from dispatcher.pipeline import Backlog, run_ordered
from dispatcher.provider_pool import ProviderPool, probe_lease_s
from dispatcher.ratelimit import RateLimits
from dispatcher.sender import BoundedSender
from providers.config import load_providers
from schemas import topics
from schemas.control.secrets import secret_box
from schemas.kafka.producer import AsyncProducer
from schemas.kafka.publishing import Publisher
from schemas.kafka.replica import TopicReplica
from schemas.logs import logging_config

log = logging.getLogger("mercury.dispatcher")


def create_app(config: DispatcherConfig) -> faust.App:
    services = load_providers()
    # A restarted worker keeps its name but not its sends in flight: the instance tells them apart.
    instance = f"{config.worker_id}/{uuid.uuid4().hex[:8]}"
    publisher = Publisher(AsyncProducer(config.bootstrap, name=config.worker_id, linger_ms=config.kafka.linger_ms))
    health = FleetHealth([s.name for s in services], instance, config.breaker_failures, config.breaker_recovery_s,
                         probe_lease_s(services), publisher.publish)
    ledger = DeliveryLedger(instance, publisher.publish, config.ledger_window_s)
    replicas = [TopicReplica(config.bootstrap, topics.HEALTH, instance, health.apply, publisher.publish),
                TopicReplica(config.bootstrap, topics.LEDGER, instance, ledger.apply, publisher.publish,
                             since=ledger.window_start)]
    ledger.follow(replicas[1])
    sender = BoundedSender(config.send_concurrency)
    limits = RateLimits(config.rate_limits, health.fleet_size)
    ownership = Ownership()
    backlog = Backlog()
    dispatcher = Dispatcher(services, health, ledger, limits, sender, config.retry_delays, config.retry_ambiguous,
                            config.worker_id, ownership=ownership)
    pool = ProviderPool(dispatcher, health, os.environ, secret_box())
    settings = LiveSettings(config.configurations(), len(config.retry_delays), dispatcher, health, limits)
    control = [TopicReplica(config.bootstrap, topics.PROVIDERS, instance, pool.apply, publisher.publish),
               TopicReplica(config.bootstrap, topics.CONFIGURATIONS, instance, settings.apply, publisher.publish)]
    replicas += control
    control_read = asyncio.Event()

    app = kafka_driver.App(
        "mercury-dispatcher",
        fetch_wait_ms=config.kafka.fetch_wait_ms,
        broker=f"kafka://{config.bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        # Tansu holds a group join for half the session timeout: a short one makes workers start in seconds.
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=config.session_timeout_s / 6,
        # A worker giving partitions up first finishes its sends under way: the group waits that long for it.
        broker_rebalance_timeout=max(config.rebalance_timeout_s, config.session_timeout_s),
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        stream_wait_empty=False,
        # The worker sets logging up again as it starts: with this, its lines (and Faust's, aiokafka's) stay logfmt.
        logging_config=logging_config(),
    )

    def lease_for(event: EventT) -> Lease:
        return ownership.lease(event.message.topic, event.message.partition)

    async def process(event: EventT, lease: Lease) -> None:
        message = event.message
        await control_read.wait()
        source = Source(message.topic, message.partition, message.offset, int(message.timestamp * 1000))
        await publish_outputs(await dispatcher.handle(message.value, message.key, source, lease), source, publisher,
                              dispatcher, ledger)

    async def consume(stream: StreamT) -> None:
        await run_ordered(stream, process, lease_for, config.max_in_flight, backlog)

    app.agent(app.topic(topics.REQUESTS), name="requests")(consume)
    for level in range(len(config.retry_delays)):
        app.agent(app.topic(topics.retry_topic(level)), name=f"retry-{level}")(consume)
    for topic in topics.schedule_topics():
        app.agent(app.topic(topic), name=topic.replace(".", "-"))(consume)

    @app.task
    async def share_health() -> None:
        for replica in replicas:
            replica.start()
        await health.heartbeats()

    @app.task
    async def follow_control() -> None:
        """The registry and the configurations as written before this worker started apply before any mail."""
        await asyncio.gather(*(replica.caught_up() for replica in control))
        control_read.set()
        log.info("control_read",
                 extra={"worker": instance, "providers": ",".join(s.name for s in dispatcher.services())})

    @app.on_partitions_assigned.connect
    async def read_ledger_again(_sender: object, assigned: set, **_kwargs: object) -> None:
        """Records of a partition that was someone else's must meet everything its owner wrote."""
        ledger.refresh()
        log.info("partitions_assigned", extra={
            "worker": instance, "partitions": ",".join(sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))})

    @app.on_partitions_revoked.connect
    async def finish_sends(_sender: object, revoked: set, **_kwargs: object) -> None:
        """Start no send for a partition given up, and let the rebalance go on only once the sends under way
        have ended and their ledger entries are written."""
        ownership.revoke((tp.topic, tp.partition) for tp in revoked)
        if ownership.sends:
            log.info("rebalance_waits_for_sends", extra={"worker": instance, "sends": ownership.sends})
        await ownership.settled()
        log.info("partitions_released", extra={"worker": instance, "partitions": len(revoked)})

    @app.on_before_shutdown.connect
    async def close(*_args: object, **_kwargs: object) -> None:
        ownership.stop()
        try:
            await asyncio.wait_for(backlog.emptied(), config.rebalance_timeout_s)
        except TimeoutError:
            log.error("shutdown_backlog_left",
                      extra={"worker": instance, "records": len(backlog), "sends": ownership.sends})
        log.info("dispatcher_drained", extra={"worker": instance})
        await health.flush()
        for replica in replicas:
            replica.close()
        for service in dispatcher.services():
            service.close()
        publisher.close()
        log.info("dispatcher_closed", extra={"worker": instance})

    @app.on_after_configured.connect
    def log_config(*_args: object, **_kwargs: object) -> None:
        log.info("dispatcher_configured", extra={
            "worker": instance, "providers": ",".join(s.name for s in services), "retry_delays": config.retry_delays,
            "rate_limits": config.rate_limits or "none"})

    return app
