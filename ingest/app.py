"""The gateway's REST API. Writes go to Kafka (202 only after the broker acknowledged); reads come from ClickHouse."""
import asyncio
import logging
import threading
from contextlib import asynccontextmanager

import orjson
from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from analytics.connection import connect
from analytics.store import MailStore
from ingest import (
    analytics_api,
    dashboard,
    keys_api,
    lag,
    mail_batch,
    metrics,
    openapi,
    over_rate,
    schema_registry,
    webhooks,
)
from ingest.acceptor import API, Acceptor, Keyed, mail_url, read_body, status_for
from ingest.api_keys import ApiKey
from ingest.auth import OPERATOR, READ, SEND, KeyedRoute, RateLimited
from ingest.config import IngestConfig
from ingest.configurations_api import ConfigurationsApi
from ingest.idempotency import body_digest, idempotency_key, mail_id_for
from ingest.key_limits import KeyLimits
from ingest.key_ring import KeyRing
from ingest.over_rate import OverRateTally
from ingest.providers_api import ProvidersApi
from ingest.requests_body import EVENT_NAME, mail_from_body, new_id, parse_json
from ingest.responses import error, json_response
from schemas import topics
from schemas.events import encode_event, make_event
from schemas.kafka.producer import AsyncProducer, BrokerUnavailable, MaybeWritten
from schemas.validation import InvalidMail
from schemas.vocabulary import EventType

log = logging.getLogger("mercury.ingest")
PIPELINE_EVENTS = frozenset(str(e) for e in EventType)
MAX_PER_PAGE = 500
MAX_PAGE = 1_000_000_000


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
    acceptor = Acceptor(stores.get)
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
        log.info("event=ingest_started bootstrap=%s", config.bootstrap)
        yield
        summaries.cancel()
        await asyncio.gather(summaries, return_exceptions=True)
        providers_api.close()
        configurations_api.close()
        app.state.keys.close()
        app.state.producer.close()
        log.info("event=ingest_stopped")

    app = FastAPI(title="Mercury", version="1.0", lifespan=lifespan)
    app.add_middleware(metrics.RequestMetrics)

    async def create_mail(request: Request, api_key: ApiKey = SEND) -> Response:
        producer: AsyncProducer = request.app.state.producer
        # A rejection never lands on a key's mail: its history would end in `rejected` though it was sent.
        rejection_id = new_id(api_key.tenant)
        body = b""
        try:
            body = await read_body(request, config.max_body_bytes)
            key = idempotency_key(request.headers)
            mail_id = rejection_id if key is None else mail_id_for(key, api_key.tenant)
            mail = mail_from_body(body, mail_id, api_key.tenant)
        except InvalidMail as err:
            return (await acceptor.reject(producer, rejection_id, err, body, api_key.tenant)).response()
        if key is None:
            [answer] = await acceptor.accept_all(producer, [(mail, {})])
        else:
            [answer] = await acceptor.accept_keyed(producer, [Keyed(key, mail, body_digest(body), body, rejection_id)])
        return answer.response()

    # The two routes every mail takes come first, so they are matched before the others are tried.
    app.router.add_api_route(f"{API}/mails/", create_mail, methods=["POST"], status_code=202,
                             route_class_override=KeyedRoute, **openapi.CREATE_MAIL)
    mail_batch.install(app, acceptor, config.max_batch_body_bytes)

    app.include_router(schema_registry.router)
    app.include_router(analytics_api.router(stores.get_client))
    app.include_router(webhooks.router(config))
    app.include_router(lag.router(config.bootstrap), dependencies=[OPERATOR])
    app.include_router(keys_api.router())
    app.include_router(providers_api.router(), dependencies=[OPERATOR])
    app.include_router(configurations_api.router(), dependencies=[OPERATOR])
    dashboard.install(app)
    openapi.install(app, *mail_batch.MODELS)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if isinstance(exc, RateLimited):
            request.app.state.over_rate.refused(request.state.api_key)
            return error(429, str(exc.detail), exc.headers, field=over_rate.FIELD)
        return error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        return error(422, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")

    @app.exception_handler(ClickHouseError)
    @app.exception_handler(EOFError)
    @app.exception_handler(OSError)
    async def store_down(_request: Request, exc: Exception) -> Response:
        log.error("event=clickhouse_error error=%r", exc)
        return error(503, "the mail history store is unavailable; retry later")

    @app.get(f"{API}/", **openapi.INDEX)
    def index() -> Response:
        return json_response({
            "version": "1.0",
            "endpoints": {
                "mails": f"{API}/mails/",
                "batch": mail_batch.PATH,
                "mail": f"{API}/mails/<mail_id>",
                "events": f"{API}/mails/<mail_id>/events/",
                "event": f"{API}/mails/<mail_id>/events/<event_id>",
                "analytics": f"{API}/analytics/",
                "keys": f"{API}/keys/",
                "providers": f"{API}/dispatcher/providers/",
                "configurations": f"{API}/configurations/",
                "webhooks": [f"{webhooks.PREFIX}/mailgun", f"{webhooks.PREFIX}/sendgrid"],
                "schema_registry": "/schema-registry/subjects",
            },
        })

    @app.get("/metrics", **openapi.METRICS)
    def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get(f"{API}/mails/", **openapi.LIST_MAILS)
    def list_mails(page: int = Query(1, json_schema_extra={"minimum": 1, "maximum": MAX_PAGE}),
                   per_page: int = Query(50, json_schema_extra={"minimum": 1, "maximum": MAX_PER_PAGE}),
                   api_key: ApiKey = READ) -> Response:
        # Bounded so the row offset stays within ClickHouse's integers (past that it answered as if it were down).
        if not 1 <= page <= MAX_PAGE or not 1 <= per_page <= MAX_PER_PAGE:
            return error(422, f"page must be between 1 and {MAX_PAGE} and per_page between 1 and {MAX_PER_PAGE}")
        mails, total = stores.get().list_mails(limit=per_page, offset=(page - 1) * per_page,
                                               tenant=api_key.tenant)
        has_next = page * per_page < total
        return json_response({
            "mails": [_with_links(m) for m in mails],
            "page": page,
            "per_page": per_page,
            "total": total,
            "next": f"{API}/mails/?page={page + 1}&per_page={per_page}" if has_next else None,
        })

    @app.get(f"{API}/mails/{{mail_id}}", **openapi.GET_MAIL)
    def get_mail(mail_id: str, api_key: ApiKey = READ) -> Response:
        mail = stores.get().get_mail(mail_id, tenant=api_key.tenant)
        if mail is None:
            return error(404, f"mail {mail_id} not found")
        return json_response(_with_links(mail))

    @app.get(f"{API}/mails/{{mail_id}}/events/", **openapi.LIST_EVENTS)
    def list_events(mail_id: str, api_key: ApiKey = READ) -> Response:
        events = stores.get().mail_events(mail_id, tenant=api_key.tenant)
        if not events and stores.get().get_mail(mail_id, tenant=api_key.tenant) is None:
            return error(404, f"mail {mail_id} not found")
        return json_response({"mail": mail_id, "events": events})

    @app.get(f"{API}/mails/{{mail_id}}/events/{{event_id}}", **openapi.GET_EVENT)
    def get_event(mail_id: str, event_id: str, api_key: ApiKey = READ) -> Response:
        event = stores.get().get_event(mail_id, event_id, tenant=api_key.tenant)
        if event is None:
            return error(404, f"event {event_id} of mail {mail_id} not found")
        return json_response(event)

    @app.post(f"{API}/mails/{{mail_id}}/events/", status_code=202, **openapi.CREATE_EVENT)
    async def create_event(mail_id: str, request: Request, api_key: ApiKey = SEND) -> Response:
        """Clients record their own steps (a webhook seen, a user action) on their tenant's mails, once the mail
        is in the history; pipeline event names are reserved."""
        try:
            data = parse_json(await read_body(request, config.max_body_bytes))
        except InvalidMail as err:
            return error(status_for(err), str(err), field=err.field)
        name = data.get("event")
        if not isinstance(name, str) or not EVENT_NAME.match(name):
            return error(422, "event: required, lowercase letters, digits and '_' (at most 64)", field="event")
        if name in PIPELINE_EVENTS:
            return error(422, f"event: {name!r} is recorded by the pipeline itself", field="event")
        created_by = data.get("created_by", "api")
        if not isinstance(created_by, str) or len(created_by) > 64:
            return error(422, "created_by: must be a string of at most 64 characters", field="created_by")
        blob = data.get("blob", "")
        if await run_in_threadpool(lambda: stores.get().get_mail(mail_id, tenant=api_key.tenant)) is None:
            return error(404, f"mail {mail_id} not found (a mail just accepted shows up within seconds)")
        event = make_event(mail_id, name, created_by)
        event["blob"] = blob if isinstance(blob, str) else orjson.dumps(blob).decode()
        try:
            await request.app.state.producer.send(topics.EVENTS, mail_id, encode_event(event))
        except MaybeWritten:
            return error(503, "the event stream did not confirm the event in time: it may or may not be recorded")
        except BrokerUnavailable:
            return error(503, "the event stream is unavailable; nothing was recorded, retry later")
        return json_response(event, 202, {"Location": f"{mail_url(mail_id)}/events/{event['id']}"})

    return app


def _with_links(mail: dict) -> dict:
    url = mail_url(mail["id"])
    return {**mail, "url": url, "events_url": f"{url}/events/"}
