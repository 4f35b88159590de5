"""Every entry point stops reading at its limit whatever the framing: a chunked body with no Content-Length, or
one that never ends, is answered 413 once it passed the limit, never read whole into memory."""
import select
import socket
from urllib.parse import urlsplit

import pytest
import requests

from deploy.stack import LocalStack
from tests.e2e.sessions import gateway

CHUNK = b"x" * 65_536
# Far past every limit (the largest is a batch of mails' 10,000,000 bytes): a server still reading here never stops.
GIVE_UP_BYTES = 64 * 1024 * 1024

# (method, path, needs the stack's key, limit in bytes)
ENTRY_POINTS = (
    ("POST", "/api/v1.0/mails/", True, 900_000),
    ("POST", "/api/v1.0/mails", True, 900_000),
    ("POST", "/api/v1.0/mails/batch", True, 10_000_000),
    ("POST", "/api/v1.0/mails/any-mail/events/", True, 900_000),
    ("POST", "/api/v1.0/keys/", True, 65_536),
    ("POST", "/api/v1.0/dispatcher/providers/", True, 65_536),
    ("PUT", "/api/v1.0/configurations/retry_ladder", True, 65_536),
    ("POST", "/api/v1.0/webhooks/mailgun", False, 900_000),
    ("POST", "/api/v1.0/webhooks/sendgrid", False, 900_000),
    ("POST", "/schema-registry/subjects/mail.requests-value/versions", False, 262_144),
)


def _endless_chunked(url: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, int]:
    """Send a chunked body that never ends until the server answers; (status, bytes sent by then)."""
    parts = urlsplit(url)
    head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Transfer-Encoding: chunked",
            "Content-Type: application/json", *(f"{name}: {value}" for name, value in headers.items())]
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        chunk = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
        while sent < GIVE_UP_BYTES:
            readable, writable, _ = select.select([conn], [conn], [], 10)
            if readable:
                break
            if not writable:
                continue
            try:
                conn.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(CHUNK)
        else:
            return 0, sent
        answer = conn.recv(65_536).decode(errors="replace")
    return int(answer.split(" ", 2)[1]), sent


@pytest.mark.parametrize("method, path, keyed, limit", ENTRY_POINTS)
def test_a_body_that_never_ends_is_cut_at_the_limit(stack: LocalStack, method, path, keyed, limit):
    headers = {"Authorization": gateway.headers["Authorization"]} if keyed else {}
    status, sent = _endless_chunked(stack.config.api_url, method, path, headers)
    assert status == 413, f"{method} {path}: read {sent} bytes without answering 413 (got {status})"
    # The socket buffers hold a few megabytes in flight; the server stopped long before the give-up point.
    assert sent < limit + 16 * 1024 * 1024


@pytest.mark.parametrize("method, path, keyed, limit", ENTRY_POINTS)
def test_a_chunked_body_over_the_limit_is_answered_413_with_the_reason(stack: LocalStack, method, path, keyed,
                                                                       limit):
    def body():
        yield b"{" + b" " * limit
        yield b"}"

    session = gateway if keyed else requests.Session()
    answer = session.request(method, f"{stack.config.api_url}{path}", data=body(), timeout=30,
                             headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert f"larger than {limit} bytes" in answer.text


def test_a_chunked_body_within_the_limit_is_read_as_usual(stack: LocalStack):
    mail = b'{"sender": "a@example.com", "recipients": "b@example.com", "subject": "chunked", "content": "hi"}'
    answer = gateway.post(f"{stack.config.api_url}/api/v1.0/mails/", data=iter([mail[:10], mail[10:]]),
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 202, answer.text
