"""Every refusal the gateway answers: one error type carrying its status, message and field, and one place
that turns it into an answer.

Route code raises GatewayError, or lets through the two errors the schemas raise: InvalidMail (a mail's fields, a
body that is not JSON, a body over its limit) and InvalidSetting (a provider's or a configuration's value); the
handlers `install` adds answer them all with the API's one error shape,
`{"error": message, "field": field}` (ingest.responses).
"""
import logging

from clickhouse_driver.errors import Error as ClickHouseError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from ingest.responses import error
from schemas.control.provider_settings import InvalidSetting
from schemas.validation import InvalidMail

log = logging.getLogger("mercury.ingest")


class GatewayError(Exception):
    """A request refused with `status`; `field` names what is wrong in it, if one thing is."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers

    def response(self) -> Response:
        return error(self.status, self.message, self.headers, **({} if self.field is None else {"field": self.field}))


class BodyTooLarge(InvalidMail):
    """Answered 413: the request is larger than its entry point takes."""


class Malformed(InvalidMail):
    """Answered 400: a header or the body's framing is malformed, before any field could be read."""


def status_for(err: InvalidMail) -> int:
    """413 for size, 400 when the body is not a JSON object at all or a header is malformed, 422 for a field
    that is wrong."""
    if isinstance(err, BodyTooLarge):
        return 413
    return 400 if err.field == "body" or isinstance(err, Malformed) else 422


def install(app: FastAPI) -> None:
    """Answer every refusal, FastAPI's own (an unknown path, a query parameter of the wrong type) included, and a
    history store that cannot answer, in the one error shape."""

    @app.exception_handler(GatewayError)
    async def gateway_error(_request: Request, exc: GatewayError) -> Response:
        return exc.response()

    @app.exception_handler(InvalidMail)
    async def invalid(_request: Request, exc: InvalidMail) -> Response:
        return GatewayError(status_for(exc), str(exc), exc.field).response()

    @app.exception_handler(InvalidSetting)
    async def invalid_setting(_request: Request, exc: InvalidSetting) -> Response:
        return GatewayError(422, str(exc), exc.field).response()

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
        return error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        return error(422, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")

    @app.exception_handler(ClickHouseError)
    @app.exception_handler(EOFError)
    @app.exception_handler(OSError)
    async def store_down(_request: Request, exc: Exception) -> Response:
        log.error("clickhouse_error", extra={"error": repr(exc)})
        return error(503, "the mail history store is unavailable; retry later")
