"""Faust's Kafka driver with the fetch wait set by configuration instead of its fixed 1.5 s.

A fetch over several partitions is answered when `fetch.wait.max.ms` passes or enough bytes arrived. Real
Kafka answers as soon as data is there; the local broker holds a multi-partition fetch for the whole wait, and
Faust hard-codes `fetch_max_wait_ms=1500` for its consumers. So on the local stack a lone mail waited up to
1.5 s for each hop (requests, then every retry or schedule topic). The wait is set on the consumer after Faust
built it and before it starts (aiokafka reads it when it starts its fetcher), so Faust itself is not forked.
"""
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as driver


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: driver.Transport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_wait_ms
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(driver.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A Faust app whose consumers wait at most `fetch_wait_ms` for data in a fetch."""

    def __init__(self, *args: Any, fetch_wait_ms: int, **kwargs: Any) -> None:
        self.fetch_wait_ms = fetch_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)
