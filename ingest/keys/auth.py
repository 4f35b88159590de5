"""Who is asking: the API key a request carries, checked for its scope and its rate (FastAPI dependencies).

401 without a valid key, 403 when the key lacks the scope, 429 past its rate, 503 while the keys cannot be
read (a valid key must never be told it is invalid because the broker is away).
"""
import inspect
from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ingest import metrics
from ingest.api_root import API
from ingest.control.topic import ControlUnavailable
from ingest.errors import GatewayError
from ingest.keys import over_rate
from ingest.keys.api_key import ApiKey, Scope
from ingest.keys.limits import KeyLimits, retry_after
from ingest.keys.ring import KeyRing, TooManyUnknown

BEARER = HTTPBearer(auto_error=False, scheme_name="ApiKey", bearerFormat="mk_<id>_<secret>",
                    description=f"An API key from `POST {API}/keys/` or `mercury keys create`: "
                                "`Authorization: Bearer mk_<id>_<secret>`.")


class RateLimited(GatewayError):
    def __init__(self, wait_s: float) -> None:
        super().__init__(429, "this API key is over its request rate; retry after the Retry-After seconds",
                         over_rate.FIELD, {"Retry-After": retry_after(wait_s)})


def require(*scopes: Scope) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency answering with the request's key once it is valid, has one of `scopes`, and is within its
    rate."""

    async def api_key(request: Request,
                      credentials: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> ApiKey:
        if credentials is None:
            raise _unauthorized("an API key is required: Authorization: Bearer <key>")
        ring: KeyRing = request.app.state.keys
        try:
            key = await ring.verify(credentials.credentials)
        except ControlUnavailable as err:
            raise GatewayError(503, f"API keys cannot be checked now; retry later ({err})",
                               headers={"Retry-After": "2"}) from err
        except TooManyUnknown as err:
            metrics.UNKNOWN_KEYS_TURNED_AWAY.inc()
            raise GatewayError(503, "too many requests with API keys this gateway does not know are waiting; "
                                    "retry later", headers={"Retry-After": "1"}) from err
        if key is None:
            raise _unauthorized("the API key is not valid: unknown, revoked or mistyped")
        if key.scopes.isdisjoint(scopes):
            raise GatewayError(403, f"this API key lacks the {' or '.join(scopes)} scope")
        setattr(request.state, metrics.KEY_ID_STATE, key.id)
        limits: KeyLimits = request.app.state.key_limits
        if (wait_s := limits.try_take(key)) > 0:
            request.app.state.over_rate.refused(key)
            raise RateLimited(wait_s)
        return key

    return api_key


class KeyedRoute(APIRoute):
    """A route on the path of every mail: its endpoint takes exactly `(request, api_key)`, the key being one
    `require(...)` dependency, and is called with the key checked by that same function, without FastAPI's
    per-request dependency solving (a third of the gateway's CPU per mail). It is documented like any route.
    Dependencies a router adds when it is included would not run: add it to the app itself."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        parameters = list(inspect.signature(self.endpoint).parameters)
        if parameters != ["request", "api_key"] or len(self.dependant.dependencies) != 1:
            raise TypeError(f"{self.path}: a keyed route's endpoint takes (request, api_key = require(...))")
        endpoint, check = self.endpoint, self.dependant.dependencies[0].call

        async def handler(request: Request) -> Response:
            return await endpoint(request, await check(request, await BEARER(request)))

        return handler


def _unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, headers={"WWW-Authenticate": 'Bearer realm="mercury"'})


SEND = Depends(require(Scope.SEND))
READ = Depends(require(Scope.READ))
# The fleet: providers, configurations, fleet-wide views, keys of any tenant.
OPERATOR = Depends(require(Scope.OPERATOR))
# Keys: a tenant administrator manages its own tenant's, an operator anyone's (ingest.keys.routes tells them apart).
KEY_ADMIN = Depends(require(Scope.TENANT_ADMIN, Scope.OPERATOR))
