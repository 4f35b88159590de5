"""`/api/v1.0/keys/`: mint, list, show and revoke API keys. A key's token is in the answer that minted it and
nowhere else.

Two scopes reach these routes. An operator manages the keys of every tenant. A tenant administrator manages
its own tenant's keys only, and never mints an operator: another tenant's key reads exactly like a missing
one, and naming another tenant is refused.
"""
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ingest import openapi
from ingest.admin_bodies import MAX_BODY_BYTES
from ingest.api_keys import DEFAULT_RATE, ApiKey, InvalidKeyRequest, Scope, mint
from ingest.api_root import API
from ingest.auth import KEY_ADMIN
from ingest.bodies import BodyTooLarge, read_limited
from ingest.control_topic import ControlUnavailable, not_stored
from ingest.key_limits import KeyLimits
from ingest.key_ring import KeyRing
from ingest.requests_body import parse_json
from ingest.responses import error, json_response
from schemas.events import now_ms
from schemas.validation import InvalidMail

PREFIX = f"{API}/keys"
FIELDS = frozenset({"tenant", "scopes", "name", "rate_per_s", "burst"})
MAX_KEYS_PER_TENANT = 100


class _Forbidden(Exception):
    """Answered 403: the caller's scope does not reach what it asked for."""


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
        raise _Forbidden(f"tenant: a tenant administrator mints keys of its own tenant ({caller.tenant}) only")
    if Scope.OPERATOR in key.scopes:
        raise _Forbidden("scopes: only an operator mints an operator key")
    if (over := limits.within_default(key)) is not None:
        raise _Forbidden(f"{over} for a key a tenant administrator mints; an operator may give more")
    if sum(k.active and k.tenant == key.tenant for k in ring.all()) >= MAX_KEYS_PER_TENANT:
        raise _Forbidden(f"the tenant has {MAX_KEYS_PER_TENANT} active keys, the most a tenant administrator may "
                         "mint; revoke one first")


def router() -> APIRouter:
    routes = APIRouter(prefix=PREFIX)

    def ring(request: Request) -> KeyRing:
        return request.app.state.keys

    @routes.post("/", status_code=201, **openapi.CREATE_KEY)
    async def create_key(request: Request, caller: ApiKey = KEY_ADMIN) -> Response:
        try:
            data = parse_json(await read_limited(request, MAX_BODY_BYTES))
            if unknown := sorted(set(data) - FIELDS):
                raise InvalidKeyRequest(unknown[0], "unknown field")
            key, token = mint(data.get("tenant", caller.tenant), data.get("scopes", [Scope.SEND, Scope.READ]),
                              data.get("name", ""), data.get("rate_per_s", DEFAULT_RATE), data.get("burst", 0))
            _check_mintable(caller, key, ring(request), request.app.state.key_limits)
        except BodyTooLarge as err:
            return error(413, str(err), field="body")
        except InvalidMail as err:
            return error(400, str(err), field=err.field)
        except InvalidKeyRequest as err:
            return error(422, str(err), field=err.field)
        except _Forbidden as err:
            return error(403, str(err))
        try:
            await ring(request).write(key)
        except ControlUnavailable as err:
            return error(503, not_stored(err, "the key"))
        location = f"{PREFIX}/{key.id}"
        return json_response({**key.public(), "key": token, "url": location}, 201, {"Location": location})

    @routes.get("/", **openapi.LIST_KEYS)
    def list_keys(request: Request, tenant: str | None = Query(None, max_length=64),
                  caller: ApiKey = KEY_ADMIN) -> Response:
        if not _operator(caller):
            if tenant not in (None, caller.tenant):
                return error(403, f"tenant: a tenant administrator lists its own tenant's keys ({caller.tenant})")
            tenant = caller.tenant
        keys = [k.public() for k in ring(request).all()
                if (tenant is None or k.tenant == tenant) and _visible(caller, k) is not None]
        return json_response({"keys": keys})

    @routes.get("/{key_id}", **openapi.GET_KEY)
    def get_key(request: Request, key_id: str, caller: ApiKey = KEY_ADMIN) -> Response:
        key = _visible(caller, ring(request).get(key_id))
        return error(404, f"key {key_id} not found") if key is None else json_response(key.public())

    @routes.delete("/{key_id}", **openapi.REVOKE_KEY)
    async def revoke_key(request: Request, key_id: str, caller: ApiKey = KEY_ADMIN) -> Response:
        """Revoking twice is harmless: the key keeps its first revocation time."""
        key = _visible(caller, ring(request).get(key_id))
        if key is None:
            return error(404, f"key {key_id} not found")
        revoked = key.revoked(now_ms())
        if revoked is not key:
            try:
                await ring(request).write(revoked)
            except ControlUnavailable as err:
                return error(503, not_stored(err, "the revocation"))
        return json_response(revoked.public())

    return routes
