"""The gateway's JSON answers: one shape for every error, `{"error": ..., <field>: ...}`, and a Retry-After on
every 503 (each one is a moment's unavailability, never a verdict on the request)."""
import orjson
from fastapi.responses import Response

RETRY_AFTER_S = "2"


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if status == 503:
        headers = {"Retry-After": RETRY_AFTER_S, **(headers or {})}
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def error(status: int, message: str, headers: dict[str, str] | None = None, **extra: object) -> Response:
    return json_response({"error": message, **extra}, status, headers)
