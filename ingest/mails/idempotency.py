"""Idempotency-Key: a client that retries a POST gets the first mail back instead of a second mail.

The mail id derives from the key, so every gateway process, before and after a restart, arrives at the same
id without coordinating. Two racing requests may both publish, but under one mail id, which the dispatcher
never sends twice (and, bodies differing, reports as a conflict). A key is checked in ClickHouse; while it
cannot answer, a keyed request is refused with 503 rather than published unchecked.
"""
import hashlib
import re
import uuid
from collections import OrderedDict

from starlette.datastructures import Headers

from ingest.errors import Malformed
from schemas.model import DEFAULT_TENANT
from schemas.validation import InvalidMail, own_mail_id
from schemas.vocabulary import IDEMPOTENCY_HEADER

HEADER = IDEMPOTENCY_HEADER
MAX_KEY_CHARS = 255
# Fixed for good: changing it would give every key a new mail id, and retries would create second mails.
_NAMESPACE = uuid.UUID("3b0f6a52-8c1e-4d7a-b0a4-6e2f9d51c8e7")
_KEY = re.compile(r"[\x20-\x7e]{1,%d}" % MAX_KEY_CHARS)


class BadKey(Malformed):
    """The header itself is malformed: the request is refused before its body is looked at."""


class KeyReused(InvalidMail):
    """The key already stands for a mail with another body."""


class KeyUnchecked(RuntimeError):
    """Whether the key was used before cannot be told now (ClickHouse does not answer): nothing is published."""


KEY_CHECK_RETRY_S = "5"
KEY_RULE = f"must be 1 to {MAX_KEY_CHARS} printable ASCII characters"


def idempotency_key(headers: Headers) -> str | None:
    """The request's key, None without the header; raises BadKey unless it is 1-255 printable ASCII characters."""
    values = headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise BadKey(HEADER, "must be given once")
    if not is_key(values[0]):
        raise BadKey(HEADER, KEY_RULE)
    return values[0]


def is_key(value: object) -> bool:
    """Whether `value` may be an idempotency key (KEY_RULE), given as a header or in a batch item."""
    return isinstance(value, str) and _KEY.fullmatch(value) is not None


def mail_id_for(key: str, tenant: str = DEFAULT_TENANT) -> str:
    """The mail id a tenant's key stands for: 32 hex characters, like a random id, among the tenant's own ids.
    Tenants' keys never meet (a key holds no newline); the default tenant's ids are those keys had before there
    were tenants."""
    return own_mail_id(tenant, legacy_mail_id_for(key, tenant))


def legacy_mail_id_for(key: str, tenant: str) -> str:
    """The id the key stood for before ids carried their tenant: a retry of a request made then must find it."""
    return uuid.uuid5(_NAMESPACE, key if tenant == DEFAULT_TENANT else f"{tenant}\n{key}").hex


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class RecentKeys:
    """Keys this process accepted lately (key -> (mail id, body digest)), so most retries skip ClickHouse.

    Bounded, least recently used first out; only the event loop thread touches it.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._seen: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def get(self, key: str) -> tuple[str, str] | None:
        found = self._seen.get(key)
        if found is not None:
            self._seen.move_to_end(key)
        return found

    def put(self, key: str, mail_id: str, digest: str) -> None:
        self._seen[key] = (mail_id, digest)
        self._seen.move_to_end(key)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
