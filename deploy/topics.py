"""Create Mercury's topics, idempotently, before any producer or consumer starts."""
import logging
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas import topics

log = logging.getLogger("mercury.deploy.topics")


def _new_topic(name: str, partitions: int) -> NewTopic:
    """Provider health and the control topics are a handful of keys read by every process, and scheduled mails
    are few and long-lived: one partition each keeps their order total and the broker's fetches small."""
    if name in topics.SINGLE_PARTITION or name.startswith(topics.SCHEDULE_PREFIX):
        partitions = 1
    config = {"cleanup.policy": "compact"} if name in topics.COMPACTED else {}
    return NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)


def create_topics(bootstrap: str, partitions: int, env: Mapping[str, str]) -> None:
    """Create the topics of the ladder `env` configures; raises KafkaException if a topic can neither be
    created nor already exists."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = [_new_topic(name, partitions) for name in topics.all_topics(env)]
    created = {topic.topic: topic for topic in wanted}
    for name, future in admin.create_topics(wanted, request_timeout=15).items():
        try:
            future.result()
            log.info("topic_created", extra={"topic": name, "partitions": created[name].num_partitions})
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    metadata = admin.list_topics(timeout=10)
    missing = [t.topic for t in wanted if t.topic not in metadata.topics]
    if missing:
        raise RuntimeError(f"topics missing after creation: {missing}")
