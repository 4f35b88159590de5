"""The sink's consumer takes its fetch wait from the environment, like every other Mercury consumer."""
from analytics.sink import SinkConfig, consumer_config


def test_the_fetch_wait_is_200_ms_unless_set():
    assert consumer_config(SinkConfig.from_env({}))["fetch.wait.max.ms"] == 200
    assert consumer_config(SinkConfig.from_env({"MERCURY_SINK_FETCH_WAIT_MS": "50"}))["fetch.wait.max.ms"] == 50
