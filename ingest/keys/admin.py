"""API keys straight on Kafka: whoever can write the key topic is trusted already, so this is how the first
operator key comes to be (and how one is revoked while no gateway runs). It is the library the `mercury keys`
command (deploy/cli/keys.py) and the local stack (deploy/stack.py) use.
"""

from ingest.keys.api_key import DEFAULT_RATE, ApiKey, Scope, mint
from ingest.keys.ring import KeyRing
from schemas.events import now_ms
from schemas.kafka.producer import AsyncProducer
from schemas.model import DEFAULT_TENANT


async def create_key(bootstrap: str, tenant: str = DEFAULT_TENANT, scopes: tuple[str, ...] = (Scope.SEND, Scope.READ),
                     name: str = "", rate_per_s: float = DEFAULT_RATE, burst: int = 0) -> tuple[ApiKey, str]:
    """Mint a key and store it; raises InvalidKeyRequest or ControlUnavailable."""
    key, token = mint(tenant, scopes, name, rate_per_s, burst)
    await store_key(bootstrap, key)
    return key, token


async def store_key(bootstrap: str, key: ApiKey) -> None:
    """Write a key as it is (the local stack writes its admin key again after the broker lost its topics)."""
    async with _ring(bootstrap) as ring:
        await ring.write(key)


async def list_keys(bootstrap: str) -> list[ApiKey]:
    async with _ring(bootstrap) as ring:
        await ring.loaded()
        return ring.all()


async def revoke_key(bootstrap: str, key_id: str) -> ApiKey | None:
    """The revoked key, or None if there is no such key."""
    async with _ring(bootstrap) as ring:
        await ring.loaded()
        key = ring.get(key_id)
        if key is not None and key.active:
            key = key.revoked(now_ms())
            await ring.write(key)
        return key


class _ring:
    """A key ring with its own producer, for one command."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap

    async def __aenter__(self) -> KeyRing:
        self._producer = AsyncProducer(self._bootstrap, name="mercury-keys")
        self._ring = KeyRing(self._bootstrap)
        await self._ring.start(self._producer)
        return self._ring

    async def __aexit__(self, *_exc: object) -> None:
        self._ring.close()
        self._producer.close()
