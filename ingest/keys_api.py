"""`/api/v1.0/keys/`: mint, list, show and revoke API keys (admin scope). A key's token is in the answer
that minted it and nowhere else."""
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ingest import openapi
from ingest.api_keys import DEFAULT_RATE, InvalidKeyRequest, Scope, mint
from ingest.auth import ADMIN
from ingest.control_topic import ControlUnavailable
from ingest.key_ring import KeyRing
from ingest.requests_body import parse_json
from ingest.responses import error, json_response
from schemas.events import now_ms
from schemas.model import DEFAULT_TENANT
from schemas.validation import InvalidMail

PREFIX = "/api/v1.0/keys"
FIELDS = frozenset({"tenant", "scopes", "name", "rate_per_s", "burst"})


def router() -> APIRouter:
    routes = APIRouter(prefix=PREFIX, dependencies=[ADMIN])

    def ring(request: Request) -> KeyRing:
        return request.app.state.keys

    @routes.post("/", status_code=201, **openapi.CREATE_KEY)
    async def create_key(request: Request) -> Response:
        try:
            data = parse_json(await request.body())
            if unknown := sorted(set(data) - FIELDS):
                raise InvalidKeyRequest(unknown[0], "unknown field")
            key, token = mint(data.get("tenant", DEFAULT_TENANT), data.get("scopes", [Scope.SEND, Scope.READ]),
                              data.get("name", ""), data.get("rate_per_s", DEFAULT_RATE), data.get("burst", 0))
        except InvalidMail as err:
            return error(400, str(err), field=err.field)
        except InvalidKeyRequest as err:
            return error(422, str(err), field=err.field)
        try:
            await ring(request).write(key)
        except ControlUnavailable as err:
            return error(503, f"the key was not stored: {err}")
        location = f"{PREFIX}/{key.id}"
        return json_response({**key.public(), "key": token, "url": location}, 201, {"Location": location})

    @routes.get("/", **openapi.LIST_KEYS)
    def list_keys(request: Request, tenant: str | None = Query(None, max_length=64)) -> Response:
        keys = [k.public() for k in ring(request).all() if tenant is None or k.tenant == tenant]
        return json_response({"keys": keys})

    @routes.get("/{key_id}", **openapi.GET_KEY)
    def get_key(request: Request, key_id: str) -> Response:
        key = ring(request).get(key_id)
        return error(404, f"key {key_id} not found") if key is None else json_response(key.public())

    @routes.delete("/{key_id}", **openapi.REVOKE_KEY)
    async def revoke_key(request: Request, key_id: str) -> Response:
        """Revoking twice is harmless: the key keeps its first revocation time."""
        key = ring(request).get(key_id)
        if key is None:
            return error(404, f"key {key_id} not found")
        revoked = key.revoked(now_ms())
        if revoked is not key:
            try:
                await ring(request).write(revoked)
            except ControlUnavailable as err:
                return error(503, f"the key was not revoked: {err}")
        return json_response(revoked.public())

    return routes
