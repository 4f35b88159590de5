"""The seed's REST API. Writes go to Kafka (202 only after the broker acknowledged); reads come from ClickHouse."""
import asyncio
import logging
import threading
from contextlib import asynccontextmanager
from dataclasses import replace
from urllib.parse import quote

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
from ingest import analytics_api, bodies, dashboard, keys_api, lag, metrics, openapi, over_rate, schema_registry, webhooks
from ingest.api_keys import ApiKey
from ingest.auth import OPERATOR, READ, SEND, RateLimited
from ingest.config import IngestConfig
from ingest.configurations_api import ConfigurationsApi
from ingest.idempotency import (HEADER, KEY_CHECK_RETRY_S, BadKey, KeyReused, KeyUnchecked, RecentKeys, body_digest,
                                idempotency_key, legacy_mail_id_for, mail_id_for)
from ingest.key_limits import KeyLimits
from ingest.key_ring import KeyRing
from ingest.over_rate import OverRateTally
from ingest.providers_api import ProvidersApi
from ingest.requests_body import EVENT_NAME, mail_from_body, new_id, parse_json
from ingest.responses import error, json_response
from schemas import codec, topics
from schemas.events import accepted_event, encode_event, make_event
from schemas.model import Mail
from schemas.producer import AsyncProducer, BrokerUnavailable, MaybeWritten
from schemas.validation import InvalidMail
from schemas.vocabulary import EventType

log = logging.getLogger("mercury.ingest")
API = "/api/v1.0"
PIPELINE_EVENTS = frozenset(str(e) for e in EventType)
# A timeout may hide a write: the truth, and what makes a retry safe (the dispatchers drop a second copy of a
# mail id within their ledger window, and an Idempotency-Key gives the retry the same id).
_MAYBE_ACCEPTED = ("the mail queue did not confirm the mail in time: it may or may not have been accepted. Retry "
                   f"soon with the same {HEADER} header to be safe (the dispatchers send one mail id once within "
                   "their ledger window, 15 minutes by default); without one, a retry may send the mail twice")
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
    recent = RecentKeys()
    providers_api = ProvidersApi(config.bootstrap)
    configurations_api = ConfigurationsApi(config.bootstrap)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.producer = AsyncProducer(config.bootstrap, config.delivery_timeout_ms)
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
    app.include_router(schema_registry.router)
    app.include_router(analytics_api.router(stores.get_client))
    app.include_router(webhooks.router(config))
    app.include_router(lag.router(config.bootstrap), dependencies=[OPERATOR])
    app.include_router(keys_api.router())
    app.include_router(providers_api.router(), dependencies=[OPERATOR])
    app.include_router(configurations_api.router(), dependencies=[OPERATOR])
    dashboard.install(app)
    openapi.install(app)

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

    async def read_body(request: Request) -> bytes:
        try:
            return await bodies.read_limited(request, config.max_body_bytes)
        except bodies.BodyTooLarge as err:
            raise BodyTooLarge("body", f"larger than {err.limit} bytes") from err

    async def reject(producer: AsyncProducer, mail_id: str, err: InvalidMail, body: bytes, tenant: str,
                     **detail: object) -> Response:
        """Record the rejection so 'was it discarded at validation?' has an answer, then answer 4xx. The event
        names the tenant: the request never became a mail, so nothing else ties it to the tenant's reads."""
        event = make_event(
            mail_id, EventType.REJECTED, "ingest", reason=str(err), field=err.field, tenant=tenant,
            body=body[:1024].decode(errors="replace"), **detail,
        )
        try:
            await producer.send(topics.EVENTS, mail_id, encode_event(event))
        except BrokerUnavailable as exc:
            log.error("event=rejected_event_unrecorded mail=%s error=%s", mail_id, exc)
        status = _status_for(err)
        metrics.MAILS_REJECTED.labels(str(status)).inc()
        return error(status, str(err), field=err.field, mail_id=mail_id)

    @app.get(f"{API}/", **openapi.INDEX)
    def index() -> Response:
        return json_response({
            "version": "1.0",
            "endpoints": {
                "mails": f"{API}/mails/",
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

    async def accept(producer: AsyncProducer, mail: Mail, **detail: object) -> Response:
        """202 only once the broker has the mail; `detail` goes into its acceptance record."""
        try:
            await producer.send(topics.REQUESTS, mail.id, codec.encode("mercury.MailRequest", mail.to_record()))
        except MaybeWritten as err:
            log.warning("event=mail_maybe_accepted mail=%s error=%s", mail.id, err)
            return error(503, _MAYBE_ACCEPTED, mail_id=mail.id, accepted="unknown")
        except BrokerUnavailable as err:
            log.warning("event=mail_not_accepted mail=%s error=%s", mail.id, err)
            return error(503, "the mail queue is unavailable; nothing was accepted, retry later", accepted=False)
        try:
            await producer.send(topics.EVENTS, mail.id, encode_event(accepted_event(mail, "ingest", **detail)))
        except BrokerUnavailable as err:
            # The mail is queued and will be delivered; only its acceptance record is missing.
            log.error("event=accepted_event_unrecorded mail=%s error=%s", mail.id, err)
        metrics.MAILS_ACCEPTED.inc()
        return _accepted(mail)

    async def recorded_digest(mail: Mail) -> str | None:
        """The body digest the key's mail was accepted with, None if it was not; raises KeyUnchecked when
        ClickHouse cannot say. Publishing again would be safe only within the dispatchers' ledger window, and
        a client's retry may come later. Remembered by mail id, which the tenant is part of."""
        mail_id = mail.id
        if (seen := recent.get(mail_id)) is not None:
            return seen[1]
        try:
            detail = await run_in_threadpool(lambda: stores.get().accepted_detail(mail_id, tenant=mail.tenant))
        except (ClickHouseError, EOFError, OSError) as err:
            log.warning("event=idempotency_lookup_failed mail=%s error=%r", mail_id, err)
            raise KeyUnchecked() from err
        if detail is None:
            return None
        digest = str(detail.get("body_sha256", ""))
        recent.put(mail_id, mail_id, digest)
        return digest

    async def recorded_under(key: str, mail: Mail) -> tuple[Mail, str | None]:
        """The key's mail as it was accepted and its body digest (None for a new key); raises KeyUnchecked. A key
        first used before ids carried their tenant stands for its earlier id."""
        recorded = await recorded_digest(mail)
        earlier = replace(mail, id=legacy_mail_id_for(key, mail.tenant))
        if recorded is None and earlier.id != mail.id and (before := await recorded_digest(earlier)) is not None:
            return earlier, before
        return mail, recorded

    async def accept_once(producer: AsyncProducer, key: str, mail: Mail, body: bytes, rejection_id: str) -> Response:
        """A retry gets the first answer again and publishes nothing; another body under the same key is refused."""
        digest = body_digest(body)
        try:
            mail, recorded = await recorded_under(key, mail)
        except KeyUnchecked:
            return error(503, "the Idempotency-Key cannot be checked now (the mail history is unavailable); "
                              "nothing was accepted, retry later", {"Retry-After": KEY_CHECK_RETRY_S})
        if recorded == digest:
            log.info("event=idempotent_replay mail=%s", mail.id)
            return _accepted(mail, replayed=True)
        if recorded is not None:
            err = KeyReused(HEADER, f"{key!r} was used for a different request (mail {mail.id})")
            return await reject(producer, rejection_id, err, body, mail.tenant, idempotency_key=key)
        answer = await accept(producer, mail, idempotency_key=key, body_sha256=digest)
        if answer.status_code == 202:
            recent.put(mail.id, mail.id, digest)
        return answer

    @app.post(f"{API}/mails/", status_code=202, **openapi.CREATE_MAIL)
    async def create_mail(request: Request, api_key: ApiKey = SEND) -> Response:
        producer: AsyncProducer = request.app.state.producer
        # A rejection never lands on a key's mail: its history would end in `rejected` though it was sent.
        rejection_id = new_id(api_key.tenant)
        body = b""
        try:
            body = await read_body(request)
            key = idempotency_key(request.headers)
            mail_id = rejection_id if key is None else mail_id_for(key, api_key.tenant)
            mail = mail_from_body(body, mail_id, api_key.tenant)
        except InvalidMail as err:
            return await reject(producer, rejection_id, err, body, api_key.tenant)
        if key is None:
            return await accept(producer, mail)
        return await accept_once(producer, key, mail, body, rejection_id)

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
            data = parse_json(await read_body(request))
        except InvalidMail as err:
            return error(_status_for(err), str(err), field=err.field)
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
        return json_response(event, 202, {"Location": f"{_mail_url(mail_id)}/events/{event['id']}"})

    return app


class BodyTooLarge(InvalidMail):
    pass


def _status_for(err: InvalidMail) -> int:
    """413 for size, 400 when the body is not a JSON object at all or a header is malformed, 422 for a
    field that is wrong."""
    if isinstance(err, BodyTooLarge):
        return 413
    return 400 if err.field == "body" or isinstance(err, BadKey) else 422


def _mail_url(mail_id: str) -> str:
    """Percent-encoded: an id from an outside producer or a client's path may hold any character, and a header
    holds only Latin-1."""
    return f"{API}/mails/{quote(mail_id, safe='')}"


def _accepted(mail: Mail, replayed: bool = False) -> Response:
    """The 202 answer; a replay gets exactly the first answer's body and headers, marked as a replay."""
    url = _mail_url(mail.id)
    body: dict[str, object] = {"id": mail.id, "status": "accepted", "url": url}
    if mail.send_at:
        body["send_at"] = mail.send_at
    headers = {"Location": url, "MailId": mail.id}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(body, 202, headers)


def _with_links(mail: dict) -> dict:
    url = _mail_url(mail["id"])
    return {**mail, "url": url, "events_url": f"{url}/events/"}
