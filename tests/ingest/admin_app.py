"""A bare FastAPI app serving one operator route group (provider registry, configurations, lag) against the real
broker, each test on a fresh control topic; the operator's key check is waived (tests/security covers it)."""
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from confluent_kafka.admin import AdminClient, NewTopic
from fastapi import FastAPI
from starlette.testclient import TestClient

from ingest import errors
from ingest.control.topic import ControlView
from ingest.keys.auth import OPERATOR
from schemas.kafka.producer import AsyncProducer


def fresh_topic(bootstrap: str, kind: str) -> str:
    name = f"test.{kind}.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(15)
    return name


def operator_app(**settings: object) -> FastAPI:
    """An app answering errors as the gateway does, with every operator route open."""
    app = FastAPI(**settings)
    errors.install(app)
    app.dependency_overrides[OPERATOR.dependency] = lambda: None
    return app


@contextmanager
def serving(bootstrap: str, make_api: Callable[[], ControlView], install: Callable[[FastAPI, ControlView], None]
            ) -> Iterator[TestClient]:
    """`make_api()` builds a ProvidersApi or ConfigurationsApi, which `install` serves; it is started and closed
    with the app."""
    api = make_api()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        producer = AsyncProducer(bootstrap)
        await api.start(producer)
        yield
        api.close()
        producer.close()

    app = operator_app(lifespan=lifespan)
    install(app, api)
    with TestClient(app) as client:
        yield client
