"""`/api/v1.0/mails/`: accept a mail, read a tenant's mails (and its refused requests) and their events, record a
client's own event. `/api/v1.0/mails` answers as `/api/v1.0/mails/`.

A mail is accepted once the broker has it (ingest.mails.acceptor); reads come from ClickHouse and see only the
caller's tenant. A mail's status follows the providers' reports once it is sent (analytics.store).
"""
from collections.abc import Callable

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from analytics.store import MailStore
from ingest.api_root import API
from ingest.bodies import parse_json, read_limited
from ingest.config import IngestConfig
from ingest.errors import GatewayError
from ingest.keys.api_key import ApiKey
from ingest.keys.auth import READ, SEND, KeyedRoute
from ingest.mails import batch
from ingest.mails import openapi as docs
from ingest.mails.acceptor import Acceptor, Keyed, mail_url
from ingest.mails.idempotency import body_digest, idempotency_key, mail_id_for
from ingest.mails.request_body import EVENT_NAME, mail_from_body, new_id
from ingest.responses import json_response
from schemas import topics
from schemas.events import encode_event, make_event
from schemas.kafka.producer import AsyncProducer, BrokerUnavailable, MaybeWritten
from schemas.validation import InvalidMail
from schemas.vocabulary import EventType

PIPELINE_EVENTS = frozenset(str(e) for e in EventType)
MAX_PER_PAGE = 500
MAX_PAGE = 1_000_000_000


def install(app: FastAPI, acceptor: Acceptor, store: Callable[[], MailStore], config: IngestConfig) -> None:
    """Add the mail routes to `app`, the two every mail takes first: they are then matched before any other
    route is tried, and they must be on the app itself (ingest.keys.auth.KeyedRoute)."""

    async def create_mail(request: Request, api_key: ApiKey = SEND) -> Response:
        producer: AsyncProducer = request.app.state.producer
        # A rejection never lands on a key's mail: its history would end in `rejected` though it was sent.
        rejection_id = new_id(api_key.tenant)
        body = b""
        try:
            body = await read_limited(request, config.max_body_bytes)
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

    app.router.add_api_route(f"{API}/mails/", create_mail, methods=["POST"], status_code=202,
                             route_class_override=KeyedRoute, **docs.CREATE_MAIL)
    # `/mails` is answered as `/mails/`, not redirected: a client does not reliably repeat a POST's body after a
    # 307. Undocumented, so the OpenAPI document has each operation once.
    app.router.add_api_route(f"{API}/mails", create_mail, methods=["POST"], status_code=202,
                             route_class_override=KeyedRoute, include_in_schema=False)
    batch.install(app, acceptor, config.max_batch_body_bytes)

    @app.get(f"{API}/mails", include_in_schema=False)
    @app.get(f"{API}/mails/", **docs.LIST_MAILS)
    def list_mails(page: int = Query(1, json_schema_extra={"minimum": 1, "maximum": MAX_PAGE}),
                   per_page: int = Query(50, json_schema_extra={"minimum": 1, "maximum": MAX_PER_PAGE}),
                   api_key: ApiKey = READ) -> Response:
        # Bounded so the row offset stays within ClickHouse's integers (past that it answered as if it were down).
        if not 1 <= page <= MAX_PAGE or not 1 <= per_page <= MAX_PER_PAGE:
            raise GatewayError(422, f"page must be between 1 and {MAX_PAGE} and per_page between 1 and {MAX_PER_PAGE}")
        mails, total = store().list_mails(limit=per_page, offset=(page - 1) * per_page, tenant=api_key.tenant)
        has_next = page * per_page < total
        return json_response({
            "mails": [_with_links(m) for m in mails],
            "page": page,
            "per_page": per_page,
            "total": total,
            "next": f"{API}/mails/?page={page + 1}&per_page={per_page}" if has_next else None,
        })

    @app.get(f"{API}/mails/{{mail_id}}", **docs.GET_MAIL)
    def get_mail(mail_id: str, api_key: ApiKey = READ) -> Response:
        """The mail with its status, or a request refused under that id (the `mail_id` of its 422)."""
        mail = store().get_mail(mail_id, tenant=api_key.tenant) or store().get_rejection(mail_id, tenant=api_key.tenant)
        if mail is None:
            raise GatewayError(404, f"mail {mail_id} not found")
        return json_response(_with_links(mail))

    @app.get(f"{API}/mails/{{mail_id}}/events/", **docs.LIST_EVENTS)
    def list_events(mail_id: str, api_key: ApiKey = READ) -> Response:
        events = store().mail_events(mail_id, tenant=api_key.tenant)
        if not events and store().get_mail(mail_id, tenant=api_key.tenant) is None:
            raise GatewayError(404, f"mail {mail_id} not found")
        return json_response({"mail": mail_id, "events": events})

    @app.get(f"{API}/mails/{{mail_id}}/events/{{event_id}}", **docs.GET_EVENT)
    def get_event(mail_id: str, event_id: str, api_key: ApiKey = READ) -> Response:
        event = store().get_event(mail_id, event_id, tenant=api_key.tenant)
        if event is None:
            raise GatewayError(404, f"event {event_id} of mail {mail_id} not found")
        return json_response(event)

    @app.post(f"{API}/mails/{{mail_id}}/events/", status_code=202, **docs.CREATE_EVENT)
    async def create_event(mail_id: str, request: Request, api_key: ApiKey = SEND) -> Response:
        """Clients record their own steps (a webhook seen, a user action) on their tenant's mails, once the mail
        is in the history; pipeline event names are reserved."""
        data = parse_json(await read_limited(request, config.max_body_bytes))
        name = data.get("event")
        if not isinstance(name, str) or not EVENT_NAME.match(name):
            raise GatewayError(422, "event: required, lowercase letters, digits and '_' (at most 64)", "event")
        if name in PIPELINE_EVENTS:
            raise GatewayError(422, f"event: {name!r} is recorded by the pipeline itself", "event")
        created_by = data.get("created_by", "api")
        if not isinstance(created_by, str) or len(created_by) > 64:
            raise GatewayError(422, "created_by: must be a string of at most 64 characters", "created_by")
        blob = data.get("blob", "")
        if await run_in_threadpool(lambda: store().get_mail(mail_id, tenant=api_key.tenant)) is None:
            raise GatewayError(404, f"mail {mail_id} not found (a mail just accepted shows up within seconds)")
        event = make_event(mail_id, name, created_by)
        event["blob"] = blob if isinstance(blob, str) else orjson.dumps(blob).decode()
        try:
            await request.app.state.producer.send(topics.EVENTS, mail_id, encode_event(event))
        except MaybeWritten:
            raise GatewayError(503, "the event stream did not confirm the event in time: it may or may not be recorded")
        except BrokerUnavailable:
            raise GatewayError(503, "the event stream is unavailable; nothing was recorded, retry later")
        return json_response(event, 202, {"Location": f"{mail_url(mail_id)}/events/{event['id']}"})


def _with_links(mail: dict) -> dict:
    url = mail_url(mail["id"])
    return {**mail, "url": url, "events_url": f"{url}/events/"}
