"""Consumer lag: the arithmetic, the groups it covers, and a clear failure when the broker is not there."""
import pytest
from admin_app import operator_app
from starlette.testclient import TestClient

from analytics.rows import ROUTES
from deploy.processes import free_port
from ingest.operator.lag import (
    DISPATCHER_GROUP,
    PATH,
    ConsumerGroup,
    KafkaUnavailable,
    LagReader,
    PartitionOffsets,
    consumer_groups,
    install,
    summarize,
)
from schemas import topics


def test_lag_counts_from_the_commit_or_from_the_first_record_and_is_never_negative():
    assert PartitionOffsets("t", 0, committed=7, start=0, end=10).lag == 3
    assert PartitionOffsets("t", 0, committed=None, start=4, end=10).lag == 6, "never committed: all of it"
    assert PartitionOffsets("t", 0, committed=2, start=4, end=10).lag == 6, "records before the start are gone"
    # The local broker may report an end short of a commit (start of its last batch + 1).
    assert PartitionOffsets("t", 0, committed=12, start=0, end=10).lag == 0


def test_summary_sums_partitions_per_topic_and_topics_per_group():
    group = ConsumerGroup("g", ("a", "b", "gone"))
    offsets = [PartitionOffsets("a", 1, 5, 0, 9), PartitionOffsets("a", 0, None, 0, 2),
               PartitionOffsets("b", 0, 3, 0, 3)]
    summary = summarize(group, offsets, missing={"gone"})
    assert summary["group"] == "g" and summary["lag"] == 6
    a, b, gone = summary["topics"]
    assert (a["topic"], a["lag"], [p["partition"] for p in a["partitions"]]) == ("a", 6, [0, 1])
    assert a["partitions"][0] == {"partition": 0, "committed": None, "start": 0, "end": 2, "lag": 2}
    assert (b["lag"], b["missing"]) == (0, False)
    assert (gone["missing"], gone["lag"], gone["partitions"]) == (True, 0, [])


def test_the_groups_are_the_dispatchers_and_the_sinks_reading_topics_that_exist():
    env = {"MERCURY_RETRY_DELAYS": "1,2", "MERCURY_SINK_GROUP": "my-sink"}
    dispatcher, sink = consumer_groups(env)
    assert dispatcher == ConsumerGroup(
        DISPATCHER_GROUP, (topics.REQUESTS, "mail.retry.0", "mail.retry.1", *topics.schedule_topics()))
    assert sink == ConsumerGroup("my-sink", tuple(ROUTES))
    assert consumer_groups({})[1].group == "mercury-analytics"
    every_topic = set(topics.all_topics(env))
    assert set(dispatcher.topics) <= every_topic and set(sink.topics) <= every_topic


def test_an_unreachable_broker_is_a_503_with_the_reason():
    bootstrap = f"127.0.0.1:{free_port()}"
    with pytest.raises(KafkaUnavailable, match="(?i)transport|did not answer"):
        LagReader(bootstrap).measure(consumer_groups({}))
    app = operator_app()
    install(app, bootstrap)
    answer = TestClient(app).get(PATH)
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert answer.json()["error"].startswith("Kafka is unavailable")
