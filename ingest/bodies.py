"""Reading a request body without trusting its framing: every entry point stops at its limit.

`Content-Length` is only a hint: a chunked request has none, and a client may declare less than it sends.
The body is read from the stream and reading stops as soon as the bytes passed the limit, so a request
never costs more memory than its entry point allows.
"""
from fastapi import Request

from ingest.errors import BodyTooLarge


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
