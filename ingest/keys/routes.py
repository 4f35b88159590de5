"""`/api/v1.0/keys/`: mint, list, show and revoke API keys. A key's token is in the answer that minted it and
nowhere else.

Two scopes reach these routes. An operator manages the keys of every tenant. A tenant administrator manages
its own tenant's keys only, and never mints an operator: another tenant's key reads exactly like a missing
one, and naming another tenant is refused.
"""
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response

from ingest.api_root import API
from ingest.bodies import json_object
from ingest.control.topic import ControlUnavailable, not_stored
from ingest.errors import GatewayError
from ingest.keys import openapi as docs
from ingest.keys.api_key import DEFAULT_RATE, ApiKey, InvalidKeyRequest, Scope, mint
from ingest.keys.auth import KEY_ADMIN
from ingest.keys.limits import KeyLimits
from ingest.keys.ring import KeyRing
from ingest.responses import json_response
from schemas.events import now_ms

PREFIX = f"{API}/keys"
FIELDS = frozenset({"tenant", "scopes", "name", "rate_per_s", "burst"})
MAX_KEYS_PER_TENANT = 100


def _operator(caller: ApiKey) -> bool:
    return Scope.OPERATOR in caller.scopes


def _visible(caller: ApiKey, key: ApiKey | None) -> ApiKey | None:
    """The key if the caller may see it. To a tenant administrator another tenant's key, or an operator's key
    (an operator may belong to any tenant), is no key at all."""
    if key is None or _operator(caller):
        return key
    return key if key.tenant == caller.tenant and Scope.OPERATOR not in key.scopes else None


def _check_mintable(caller: ApiKey, key: ApiKey, ring: KeyRing, limits: KeyLimits) -> None:
    """A tenant administrator mints within its tenant, below the gateway's default rate, up to
    MAX_KEYS_PER_TENANT active keys: the limits meant for a tenant are not the tenant's to lift."""
    if _operator(caller):
        return
    if key.tenant != caller.tenant:
        raise GatewayError(403, f"tenant: a tenant administrator mints keys of its own tenant ({caller.tenant}) only")
    if Scope.OPERATOR in key.scopes:
        raise GatewayError(403, "scopes: only an operator mints an operator key")
    if (over := limits.within_default(key)) is not None:
        raise GatewayError(403, f"{over} for a key a tenant administrator mints; an operator may give more")
    if sum(k.active and k.tenant == key.tenant for k in ring.all()) >= MAX_KEYS_PER_TENANT:
        raise GatewayError(403, f"the tenant has {MAX_KEYS_PER_TENANT} active keys, the most a tenant "
                                "administrator may mint; revoke one first")


def install(app: FastAPI) -> None:
    routes = APIRouter(prefix=PREFIX)

    def ring(request: Request) -> KeyRing:
        return request.app.state.keys

    @routes.post("/", status_code=201, **docs.CREATE_KEY)
    async def create_key(request: Request, caller: ApiKey = KEY_ADMIN) -> Response:
        data = await json_object(request, FIELDS)
        try:
            key, token = mint(data.get("tenant", caller.tenant), data.get("scopes", [Scope.SEND, Scope.READ]),
                              data.get("name", ""), data.get("rate_per_s", DEFAULT_RATE), data.get("burst", 0))
        except InvalidKeyRequest as err:
            raise GatewayError(422, str(err), err.field) from err
        _check_mintable(caller, key, ring(request), request.app.state.key_limits)
        try:
            await ring(request).write(key)
        except ControlUnavailable as err:
            raise not_stored(err, "the key") from err
        location = f"{PREFIX}/{key.id}"
        return json_response({**key.public(), "key": token, "url": location}, 201, {"Location": location})

    @routes.get("/", **docs.LIST_KEYS)
    def list_keys(request: Request, tenant: str | None = Query(None, max_length=64),
                  caller: ApiKey = KEY_ADMIN) -> Response:
        if not _operator(caller):
            if tenant not in (None, caller.tenant):
                raise GatewayError(403, f"tenant: a tenant administrator lists its own tenant's keys ({caller.tenant})")
            tenant = caller.tenant
        keys = [k.public() for k in ring(request).all()
                if (tenant is None or k.tenant == tenant) and _visible(caller, k) is not None]
        return json_response({"keys": keys})

    @routes.get("/{key_id}", **docs.GET_KEY)
    def get_key(request: Request, key_id: str, caller: ApiKey = KEY_ADMIN) -> Response:
        key = _visible(caller, ring(request).get(key_id))
        if key is None:
            raise GatewayError(404, f"key {key_id} not found")
        return json_response(key.public())

    @routes.delete("/{key_id}", **docs.REVOKE_KEY)
    async def revoke_key(request: Request, key_id: str, caller: ApiKey = KEY_ADMIN) -> Response:
        """Revoking twice is harmless: the key keeps its first revocation time."""
        key = _visible(caller, ring(request).get(key_id))
        if key is None:
            raise GatewayError(404, f"key {key_id} not found")
        revoked = key.revoked(now_ms())
        if revoked is not key:
            try:
                await ring(request).write(revoked)
            except ControlUnavailable as err:
                raise not_stored(err, "the revocation") from err
        return json_response(revoked.public())

    app.include_router(routes)
