"""A bare FastAPI app serving one admin router (provider registry or configurations) against the real broker,
each test on a fresh control topic."""
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from confluent_kafka.admin import AdminClient, NewTopic
from fastapi import FastAPI
from starlette.testclient import TestClient

from schemas.kafka.producer import AsyncProducer


def fresh_topic(bootstrap: str, kind: str) -> str:
    name = f"test.{kind}.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(15)
    return name


@contextmanager
def serving(bootstrap: str, make_api: Callable[[], object]) -> Iterator[TestClient]:
    """`make_api()` builds a ProvidersApi or ConfigurationsApi; it is started and closed with the app."""
    api = make_api()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        producer = AsyncProducer(bootstrap)
        await api.start(producer)
        yield
        api.close()
        producer.close()

    app = FastAPI(lifespan=lifespan)
    app.include_router(api.router())
    with TestClient(app) as client:
        yield client
