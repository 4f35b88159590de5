"""Reading a request body without trusting its framing: every entry point stops at its limit.

`Content-Length` is only a hint: a chunked request has none, and a client may declare less than it sends.
The body is read from the stream and reading stops as soon as the bytes passed the limit, so a request
never costs more memory than its entry point allows.
"""
from fastapi import Request


class BodyTooLarge(ValueError):
    """Answered 413; the message names the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body: larger than {limit} bytes")
        self.limit = limit


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as more than `limit` bytes were declared or received."""
    declared = request.headers.get("content-length", "")
    # A number longer than any real body is too large as it stands (and int() refuses over 4,300 digits).
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise BodyTooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
