"""`/api/v1.0/`: the version and where each group of endpoints is, for a client finding its way."""
from fastapi import FastAPI
from fastapi.responses import Response
from typing_extensions import TypedDict

from ingest.api_root import API
from ingest.mails import batch
from ingest.openapi import answer_doc
from ingest.responses import json_response
from ingest.webhooks.routes import PREFIX as WEBHOOKS

ENDPOINTS = {
    "mails": f"{API}/mails/",
    "batch": batch.PATH,
    "mail": f"{API}/mails/<mail_id>",
    "events": f"{API}/mails/<mail_id>/events/",
    "event": f"{API}/mails/<mail_id>/events/<event_id>",
    "analytics": f"{API}/analytics/",
    "keys": f"{API}/keys/",
    "providers": f"{API}/dispatcher/providers/",
    "configurations": f"{API}/configurations/",
    "webhooks": [f"{WEBHOOKS}/mailgun", f"{WEBHOOKS}/sendgrid"],
    "schema_registry": "/schema-registry/subjects",
}


class Index(TypedDict):
    version: str
    endpoints: dict[str, str | list[str]]


MODELS = (Index,)
INDEX = {"responses": {200: answer_doc(Index, "the version and the endpoints")}}


def install(app: FastAPI) -> None:
    @app.get(f"{API}/", **INDEX)
    def index() -> Response:
        return json_response({"version": "1.0", "endpoints": ENDPOINTS})
