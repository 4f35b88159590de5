"""The admin endpoints' (provider registry, configurations) small JSON bodies and refusals: size first, then a
JSON object with only the fields the endpoint knows, each refusal naming what is wrong."""
from collections.abc import Collection

from fastapi import Request
from fastapi.responses import Response

from ingest.bodies import BodyTooLarge, read_limited
from ingest.control_topic import ControlUnavailable, not_stored
from ingest.requests_body import parse_json
from ingest.responses import error
from schemas.control.provider_settings import InvalidSetting
from schemas.validation import InvalidMail

MAX_BODY_BYTES = 65_536


class Refused(ValueError):
    """A request answered with `status` and a message naming `field` (if any)."""

    def __init__(self, status: int, message: str, field: str | None = "body") -> None:
        super().__init__(message)
        self.status = status
        self.field = field


REFUSALS = (Refused, InvalidSetting, ControlUnavailable)


def refusal(err: Exception) -> Response:
    """The answer to one of REFUSALS: its own status, 422 for a bad setting, 503 when the topic is away."""
    if isinstance(err, Refused):
        return error(err.status, str(err), **({"field": err.field} if err.field else {}))
    if isinstance(err, InvalidSetting):
        return error(422, str(err), field=err.field)
    return error(503, not_stored(err, "the change"))


async def json_object(request: Request, fields: Collection[str]) -> dict:
    """The body as a JSON object; raises Refused: 413 too large, 400 not a JSON object, 422 unknown field."""
    try:
        body = await read_limited(request, MAX_BODY_BYTES)
    except BodyTooLarge as err:
        raise Refused(413, str(err)) from err
    try:
        data = parse_json(body)
    except InvalidMail as err:
        raise Refused(400, str(err)) from err
    if unknown := sorted(set(data) - set(fields)):
        raise Refused(422, f"{unknown[0]}: unknown field (expected {', '.join(sorted(fields))})", unknown[0])
    return data
