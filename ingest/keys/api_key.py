"""API keys: a public id and a random secret, shown once when minted; only the secret's hash is ever stored.

A key reads `mk_<id>_<secret>`. The id finds the entry, the secret's SHA-256 is compared in constant time:
with 256 random bits in the secret, a slow password hash would add latency to every request and no safety.
Each key belongs to one tenant and carries scopes: `send` (post mails and events), `read` (the tenant's
mails and analytics), `tenant_admin` (the tenant's own keys, never another's) and `operator` (the fleet:
providers, configurations, the fleet-wide views, and keys of any tenant). A tenant's administrator is no
operator: the two are separate scopes, and only an operator mints an operator key.
"""
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from schemas import codec, registry
from schemas.events import now_ms
from schemas.model import DEFAULT_TENANT, TENANT_PATTERN

SCHEMA = registry.API_KEY
PREFIX = "mk_"
UNLIMITED = 0.0
DEFAULT_RATE = -1.0
MAX_RATE = 1_000_000.0
MAX_NAME = 200
_TOKEN = re.compile(rf"{PREFIX}([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})")
_TENANT = re.compile(TENANT_PATTERN)


class Scope(StrEnum):
    SEND = "send"
    READ = "read"
    TENANT_ADMIN = "tenant_admin"
    OPERATOR = "operator"


# Keys minted before the split carried `admin`: read back, it grants the narrower power (the tenant's keys).
# Asked for by name, it is refused with the new names, so nobody gets an operator by habit.
_RETIRED = {"admin": Scope.TENANT_ADMIN}
_SCOPES = ", ".join(Scope)


class InvalidKeyRequest(ValueError):
    """A key that cannot be made as asked; `field` names what to fix."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str
    scopes: frozenset[str]
    secret_sha256: bytes = field(repr=False)
    name: str = ""
    rate_per_s: float = DEFAULT_RATE
    burst: int = 0
    created_at: int = 0
    revoked_at: int = 0

    @property
    def active(self) -> bool:
        return self.revoked_at == 0

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_sha256, _digest(secret))

    def revoked(self, at_ms: int) -> "ApiKey":
        return self if not self.active else replace(self, revoked_at=at_ms)

    def public(self) -> dict:
        """What the API and the CLI show: everything but the hash."""
        return {
            "id": self.id, "tenant": self.tenant, "scopes": sorted(self.scopes), "name": self.name,
            "rate_per_s": None if self.rate_per_s == DEFAULT_RATE else self.rate_per_s,
            "burst": self.burst or None, "created_at": self.created_at,
            "revoked_at": self.revoked_at or None, "active": self.active,
        }

    def encode(self) -> bytes:
        return codec.encode(SCHEMA, {
            "id": self.id, "tenant": self.tenant, "scopes": sorted(self.scopes),
            "secret_sha256": self.secret_sha256, "name": self.name, "rate_per_s": self.rate_per_s,
            "burst": self.burst, "created_at": self.created_at, "revoked_at": self.revoked_at,
        })

    @classmethod
    def decode(cls, payload: bytes) -> "ApiKey":
        """Raises codec.DecodeError for anything but an ApiKey record."""
        name, record = codec.decode(payload)
        if name != SCHEMA:
            raise codec.DecodeError(f"{name} records do not belong on the API key topic")
        scopes = frozenset(_RETIRED.get(scope, scope) for scope in record["scopes"])
        return cls(record["id"], record["tenant"], scopes, record["secret_sha256"],
                   record["name"], record["rate_per_s"], record["burst"], record["created_at"],
                   record["revoked_at"])


def mint(tenant: str = DEFAULT_TENANT, scopes: Iterable[str] = (Scope.SEND, Scope.READ), name: str = "",
         rate_per_s: float = DEFAULT_RATE, burst: int = 0) -> tuple[ApiKey, str]:
    """A new key and its token; the token exists only in the caller's hands from here on."""
    tenant, wanted, name = checked(tenant, scopes, name, rate_per_s, burst)
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    key = ApiKey(key_id, tenant, wanted, _digest(secret), name, float(rate_per_s), burst, now_ms())
    return key, f"{PREFIX}{key_id}_{secret}"


def checked(tenant: object, scopes: object, name: object, rate_per_s: object,
            burst: object) -> tuple[str, frozenset[str], str]:
    """Raises InvalidKeyRequest naming the first field that is wrong."""
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise InvalidKeyRequest("tenant", f"must match {TENANT_PATTERN}")
    if isinstance(scopes, str) or not isinstance(scopes, Iterable):
        raise InvalidKeyRequest("scopes", f"must be a list of {_SCOPES}")
    wanted = list(scopes)
    if retired := [s for s in wanted if isinstance(s, str) and s in _RETIRED]:
        raise InvalidKeyRequest("scopes", f"{retired[0]!r} was split in two: tenant_admin (the tenant's own keys) "
                                          "and operator (the whole fleet)")
    if not wanted or not all(isinstance(s, str) and s in Scope.__members__.values() for s in wanted):
        raise InvalidKeyRequest("scopes", f"must be a non-empty list of {_SCOPES}")
    if not isinstance(name, str) or len(name) > MAX_NAME or any(c in name for c in "\r\n"):
        raise InvalidKeyRequest("name", f"must be one line of at most {MAX_NAME} characters")
    if (isinstance(rate_per_s, bool) or not isinstance(rate_per_s, int | float) or not math.isfinite(rate_per_s)
            or not (rate_per_s == DEFAULT_RATE or 0 <= rate_per_s <= MAX_RATE)):
        raise InvalidKeyRequest("rate_per_s", f"requests per second, 0 (unlimited) to {MAX_RATE:g}")
    if isinstance(burst, bool) or not isinstance(burst, int) or not 0 <= burst <= MAX_RATE:
        raise InvalidKeyRequest("burst", "a whole number of requests, 0 (twice the rate) or more")
    return tenant, frozenset(wanted), name


def parse_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    found = _TOKEN.fullmatch(token)
    return (found[1], found[2]) if found else None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
