"""Reading a request body without trusting its framing: every entry point stops at its limit, and the small JSON
objects of the admin endpoints (keys, providers, configurations).

`Content-Length` is only a hint: a chunked request has none, and a client may declare less than it sends.
The body is read from the stream and reading stops as soon as the bytes passed the limit, so a request
never costs more memory than its entry point allows.
"""
from collections.abc import Collection

import orjson
from fastapi import Request

from ingest.errors import BodyTooLarge, GatewayError
from schemas.validation import InvalidMail

# The admin endpoints' bodies: a key, a provider or a configuration is a few hundred bytes.
SMALL_BODY_BYTES = 65_536


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge (answered 413) as soon as more than `limit` bytes were declared or
    received."""
    declared = request.headers.get("content-length", "")
    # A number longer than any real body is too large as it stands (and int() refuses over 4,300 digits).
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge("body", f"larger than {limit} bytes")


def parse_json(body: bytes) -> dict:
    """The body as a JSON object; raises InvalidMail('body', ...) otherwise (answered 400)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InvalidMail("body", f"not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise InvalidMail("body", "must be a JSON object")
    return data


async def json_object(request: Request, fields: Collection[str]) -> dict:
    """A small body as a JSON object with only `fields`; raises BodyTooLarge (413), InvalidMail when it is not a
    JSON object (400), GatewayError naming an unknown field (422)."""
    data = parse_json(await read_limited(request, SMALL_BODY_BYTES))
    if unknown := sorted(set(data) - set(fields)):
        raise GatewayError(422, f"{unknown[0]}: unknown field (expected {', '.join(sorted(fields))})", unknown[0])
    return data
