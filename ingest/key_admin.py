"""API keys from the command line, straight on Kafka: whoever can write the key topic is trusted already, so
this is how the first operator key comes to be (and how one is revoked while no gateway runs).

    mercury keys create [--tenant T] [--scope S]... [--name N] [--rate R] [--burst B] [--json]
    mercury keys list   [--tenant T] [--json]
    mercury keys revoke ID
"""
import argparse
import asyncio
import logging
import os
import sys
from datetime import UTC, datetime

import orjson

from ingest.api_keys import DEFAULT_RATE, UNLIMITED, ApiKey, InvalidKeyRequest, Scope, mint
from ingest.control_topic import ControlUnavailable
from ingest.key_ring import KeyRing
from schemas.events import now_ms
from schemas.kafka.producer import AsyncProducer
from schemas.model import DEFAULT_TENANT

log = logging.getLogger("mercury.keys")


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


def _show(key: ApiKey, token: str | None, as_json: bool) -> str:
    shown = key.public() | ({"key": token} if token else {})
    if as_json:
        return orjson.dumps(shown).decode()
    if shown["rate_per_s"] == UNLIMITED:
        shown["rate_per_s"] = "unlimited"
    for moment in ("created_at", "revoked_at"):
        if shown[moment]:
            shown[moment] = datetime.fromtimestamp(shown[moment] / 1000, UTC).isoformat(timespec="seconds")
    lines = [f"{name + ':':12}{','.join(value) if isinstance(value, list) else value}"
             for name, value in shown.items() if value is not None]
    if token:
        lines.append("(the key is shown this once: only its hash is stored)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mercury keys", description="Mint, list and revoke API keys.")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="mint a key and print it (once)")
    create.add_argument("--tenant", default=DEFAULT_TENANT)
    create.add_argument("--scope", action="append", choices=[str(s) for s in Scope], dest="scopes",
                        help="send, read, tenant_admin or operator; repeat for several (default: send and read)")
    create.add_argument("--name", default="")
    create.add_argument("--rate", type=float, default=DEFAULT_RATE,
                        help="requests per second, 0 for unlimited (default: the gateway's MERCURY_KEY_RATE_PER_S)")
    create.add_argument("--burst", type=int, default=0, help="requests at once (default: twice the rate)")
    listing = commands.add_parser("list", help="every key, without secrets")
    listing.add_argument("--tenant")
    revoke = commands.add_parser("revoke", help="revoke a key by id; every gateway refuses it within a second")
    revoke.add_argument("key_id")
    for command in (create, listing):
        command.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("MERCURY_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if args.command == "create":
            scopes = tuple(args.scopes or (Scope.SEND, Scope.READ))
            key, token = asyncio.run(create_key(args.bootstrap, args.tenant, scopes, args.name, args.rate, args.burst))
            print(_show(key, token, args.json))
        elif args.command == "list":
            keys = [k for k in asyncio.run(list_keys(args.bootstrap)) if args.tenant in (None, k.tenant)]
            print("\n".join(_show(k, None, args.json) for k in keys) if args.json else
                  "\n\n".join(_show(k, None, False) for k in keys) or "no keys")
        else:
            key = asyncio.run(revoke_key(args.bootstrap, args.key_id))
            if key is None:
                print(f"error: no key {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {key.id} (tenant {key.tenant})")
    except (InvalidKeyRequest, ControlUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
