"""The admin endpoints' (keys, provider registry, configurations) small JSON bodies: size first, then a JSON
object with only the fields the endpoint knows, each refusal naming what is wrong."""
from collections.abc import Collection

from fastapi import Request

from ingest.bodies import read_limited
from ingest.errors import GatewayError
from ingest.mails.request_body import parse_json

MAX_BODY_BYTES = 65_536


async def json_object(request: Request, fields: Collection[str]) -> dict:
    """The body as a JSON object; raises BodyTooLarge (413), InvalidMail when it is not a JSON object (400),
    GatewayError naming an unknown field (422)."""
    data = parse_json(await read_limited(request, MAX_BODY_BYTES))
    if unknown := sorted(set(data) - set(fields)):
        raise GatewayError(422, f"{unknown[0]}: unknown field (expected {', '.join(sorted(fields))})", unknown[0])
    return data
