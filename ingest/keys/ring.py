"""Every API key, followed from the compacted key topic into memory in each gateway process (and the CLI).

A request is checked against memory only, so authentication costs a dict lookup and one hash. A key written
here is readable by this process as soon as the write returns (it waits for its own replica to read it back);
other gateway processes see it, or its revocation, once their replica reads it, a fraction of a second later.
So a token whose id is not known yet waits up to a second for it before it is refused: a key is usable on
every process the moment its minting returns, and guessing costs a second a try. Only `MAX_UNKNOWN_WAITING`
such requests wait at once in a process; past that one is answered at once with a retry (never a 401: the
key may be a new one), so a flood of made-up ids cannot hold thousands of connections open.
"""
import asyncio
import logging

from ingest.control.topic import ControlView
from ingest.keys.api_key import ApiKey, parse_token
from schemas import topics

log = logging.getLogger("mercury.ingest.keys")
UNKNOWN_KEY_WAIT_S = 1.0
POLL_S = 0.05
MAX_UNKNOWN_WAITING = 32


class TooManyUnknown(Exception):
    """Too many requests with unknown key ids are waiting in this process already; answered 503."""


class KeyRing(ControlView):
    """Until the topic was read once, requests wait for it (and get 503, never 401, if the broker does not
    answer)."""

    def __init__(self, bootstrap: str, topic: str = topics.API_KEYS, timeout_s: float = 5.0) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._waiting = 0
        super().__init__(bootstrap, topic, timeout_s)

    async def loaded(self) -> None:
        """Raises ControlUnavailable while the topic cannot be read."""
        await self._topic.loaded()

    async def verify(self, token: str) -> ApiKey | None:
        """The active key a token belongs to, or None for any token that is malformed, unknown or revoked.
        Raises TooManyUnknown rather than wait behind MAX_UNKNOWN_WAITING others for an unknown id."""
        await self._topic.loaded()
        parsed = parse_token(token)
        if parsed is None:
            return None
        key = self._keys.get(parsed[0]) or await self._wait_for(parsed[0])
        return key if key is not None and key.active and key.matches(parsed[1]) else None

    async def _wait_for(self, key_id: str) -> ApiKey | None:
        if self._waiting >= MAX_UNKNOWN_WAITING:
            raise TooManyUnknown()
        self._waiting += 1
        try:
            for _ in range(int(UNKNOWN_KEY_WAIT_S / POLL_S)):
                await asyncio.sleep(POLL_S)
                if (key := self._keys.get(key_id)) is not None:
                    return key
            return None
        finally:
            self._waiting -= 1

    def get(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    def all(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.id))

    async def write(self, key: ApiKey) -> None:
        """Store a key (or its revocation) and return once this process applies it; raises ControlUnavailable."""
        await self._topic.loaded()
        await self._topic.write(key.id, key.encode())
        log.info("key_written", extra={"id": key.id, "tenant": key.tenant, "scopes": ",".join(sorted(key.scopes)),
                                       "active": key.active})

    def _apply(self, key_id: str, value: bytes) -> None:
        if not value:
            self._keys.pop(key_id, None)
            return
        key = ApiKey.decode(value)
        if key.id != key_id:
            raise ValueError(f"a key record under {key_id!r} names {key.id!r}")
        self._keys[key_id] = key
