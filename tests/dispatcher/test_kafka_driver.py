"""The dispatcher's consumers fetch with the configured wait, not Faust's fixed 1.5 s (which made a lone mail
wait on the local broker, which holds a fetch over several partitions for the whole wait)."""
import asyncio

from dispatcher import kafka_driver
from dispatcher.config import DispatcherConfig


def test_the_fetcher_waits_as_configured(bootstrap: str):
    async def started_wait() -> int:
        app = kafka_driver.App("fetch-wait-test", broker=f"kafka://{bootstrap}", fetch_wait_ms=7,
                               store="memory://", web_enabled=False)
        consumer = app.consumer._new_consumer_thread()._create_worker_consumer(app.transport)
        await consumer.start()
        try:
            return consumer._fetcher._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(started_wait()) == 7



def test_the_dispatcher_takes_its_timings_from_the_environment():
    config = DispatcherConfig.from_env({"MERCURY_KAFKA_FETCH_WAIT_MS": "500", "MERCURY_KAFKA_LINGER_MS": "5"})
    assert (config.kafka.fetch_wait_ms, config.kafka.linger_ms) == (500, 5)
