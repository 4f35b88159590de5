"""Kafka client timings: short by default (the local broker holds a fetch for its whole wait), set by environment,
and refused when they make no sense rather than handed to the client."""
import pytest

from schemas.kafka.timings import KafkaTimings


def test_the_defaults_are_short():
    assert KafkaTimings.from_env({}) == KafkaTimings(linger_ms=5, fetch_wait_ms=25)


def test_the_environment_sets_them():
    timings = KafkaTimings.from_env({"MERCURY_KAFKA_LINGER_MS": "0", "MERCURY_KAFKA_FETCH_WAIT_MS": "500"})
    assert timings == KafkaTimings(linger_ms=0, fetch_wait_ms=500)


@pytest.mark.parametrize("env, named", [
    ({"MERCURY_KAFKA_FETCH_WAIT_MS": "0"}, "MERCURY_KAFKA_FETCH_WAIT_MS"),
    ({"MERCURY_KAFKA_FETCH_WAIT_MS": "10001"}, "MERCURY_KAFKA_FETCH_WAIT_MS"),
    ({"MERCURY_KAFKA_LINGER_MS": "-1"}, "MERCURY_KAFKA_LINGER_MS"),
    ({"MERCURY_KAFKA_LINGER_MS": "1001"}, "MERCURY_KAFKA_LINGER_MS"),
])
def test_nonsense_is_refused_by_name(env, named):
    with pytest.raises(ValueError, match=named):
        KafkaTimings.from_env(env)
