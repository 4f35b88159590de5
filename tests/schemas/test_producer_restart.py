"""The shared producer against a broker that restarts and forgets everything (the local in-memory one)."""
import asyncio

from deploy.broker import broker_process
from deploy.processes import free_port
from schemas.kafka.producer import AsyncProducer, BrokerUnavailable

ATTEMPTS = 40


async def send_until_acknowledged(producer: AsyncProducer, value: bytes) -> int:
    """Send until the broker acknowledges; returns how many sends were refused before that."""
    for refused in range(ATTEMPTS):
        try:
            await producer.send("restart.probe", "k", value)
            return refused
        except BrokerUnavailable:
            await asyncio.sleep(0.5)
    raise AssertionError(f"no send acknowledged in {ATTEMPTS} attempts after the broker came back")


def test_the_producer_writes_again_after_the_broker_restarted(tmp_path):
    port = free_port()
    broker = broker_process(port, tmp_path).start()
    producer = AsyncProducer(f"127.0.0.1:{port}", delivery_timeout_ms=2000)
    try:
        assert asyncio.run(send_until_acknowledged(producer, b"before")) == 0
        broker.stop()
        broker.start()
        asyncio.run(send_until_acknowledged(producer, b"after"))
    finally:
        producer.close()
        broker.stop()
