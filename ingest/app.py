"""The gateway's REST API, assembled from its route groups. Writes go to Kafka (202 only after the broker
acknowledged); reads come from ClickHouse."""
import asyncio
import logging
import threading
from contextlib import asynccontextmanager

from clickhouse_driver import Client
from fastapi import FastAPI

from analytics.connection import connect
from analytics.store import MailStore
from ingest import errors, index, metrics, openapi, schema_registry
from ingest.config import IngestConfig
from ingest.control import configurations, providers
from ingest.control import openapi as control_docs
from ingest.control.configurations import ConfigurationsApi
from ingest.control.providers import ProvidersApi
from ingest.keys import openapi as key_docs
from ingest.keys import routes as keys
from ingest.keys.limits import KeyLimits
from ingest.keys.over_rate import OverRateTally
from ingest.keys.ring import KeyRing
from ingest.mails import batch
from ingest.mails import openapi as mail_docs
from ingest.mails import routes as mails
from ingest.mails.acceptor import Acceptor
from ingest.operator import analytics, dashboard, lag
from ingest.operator import openapi as operator_docs
from ingest.webhooks import openapi as webhook_docs
from ingest.webhooks import routes as webhooks
from schemas.kafka.producer import AsyncProducer
from schemas.logs import configure_logging

log = logging.getLogger("mercury.ingest")


class _Stores(threading.local):
    """ClickHouse clients are not thread-safe; each threadpool thread keeps its own (it reconnects by itself
    after a lost connection)."""

    client: Client | None = None
    store: MailStore | None = None

    def get(self) -> MailStore:
        if self.store is None:
            self.store = MailStore(self.get_client())
        return self.store

    def get_client(self) -> Client:
        if self.client is None:
            self.client = connect()
        return self.client


def create_app(config: IngestConfig | None = None) -> FastAPI:
    config = config or IngestConfig.from_env()
    stores = _Stores()
    providers_api = ProvidersApi(config.bootstrap)
    configurations_api = ConfigurationsApi(config.bootstrap)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.producer = AsyncProducer(config.bootstrap, config.delivery_timeout_ms,
                                           linger_ms=config.kafka.linger_ms)
        app.state.keys = KeyRing(config.bootstrap)
        app.state.key_limits = KeyLimits(config.key_rate_per_s, config.key_burst, config.workers)
        app.state.over_rate = OverRateTally(app.state.producer)
        summaries = asyncio.create_task(app.state.over_rate.run())
        # Each waits for the broker on its own: a broker away at start delays serving by one timeout, not three.
        await asyncio.gather(*(part.start(app.state.producer)
                               for part in (app.state.keys, providers_api, configurations_api)))
        log.info("ingest_started", extra={"bootstrap": config.bootstrap})
        yield
        summaries.cancel()
        await asyncio.gather(summaries, return_exceptions=True)
        providers_api.close()
        configurations_api.close()
        app.state.keys.close()
        app.state.producer.close()
        log.info("ingest_stopped")

    app = FastAPI(title="Mercury", version="1.0", lifespan=lifespan)
    # The mail routes come first: every mail takes them, and they are matched before any other is tried.
    mails.install(app, Acceptor(stores.get), stores.get, config)
    index.install(app)
    metrics.install(app, config.access_log)
    schema_registry.install(app)
    analytics.install(app, stores.get_client)
    lag.install(app, config.bootstrap)
    webhooks.install(app, config)
    keys.install(app)
    providers.install(app, providers_api)
    configurations.install(app, configurations_api)
    dashboard.install(app)
    errors.install(app)
    openapi.install(app, *mail_docs.MODELS, *batch.MODELS, *index.MODELS, *schema_registry.MODELS,
                    *operator_docs.MODELS, *webhook_docs.MODELS, *key_docs.MODELS, *control_docs.MODELS)

    return app


def create_worker_app() -> FastAPI:
    """The app as a gateway worker serves it (`python -m ingest`): uvicorn spawns each worker with no logging set
    up (it runs with log_config=None), so the worker sets up its own, like every Mercury process, before it logs."""
    configure_logging()
    return create_app()
