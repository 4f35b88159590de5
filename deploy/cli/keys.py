"""`mercury keys`: mint, list and revoke API keys straight on Kafka (the library is ingest/keys/admin.py), which is
how the first operator key comes to be and how one is revoked while no gateway runs.

    mercury keys create [--tenant T] [--scope S]... [--name N] [--rate R] [--burst B] [--json]
    mercury keys list   [--tenant T] [--json]
    mercury keys revoke ID

The broker is --bootstrap, else KAFKA_BOOTSTRAP, else 127.0.0.1:$MERCURY_KAFKA_PORT (schemas.endpoints), and a
failure to reach it names it.
"""
import argparse
import asyncio
import sys

import orjson

from deploy.cli.output import configure_logging, show_time
from ingest.control.topic import ControlUnavailable, Unconfirmed
from ingest.keys.admin import create_key, list_keys, revoke_key
from ingest.keys.api_key import DEFAULT_RATE, UNLIMITED, ApiKey, InvalidKeyRequest, Scope
from schemas import endpoints
from schemas.kafka.producer import kafka_log as producer_kafka_log
from schemas.kafka.replica import kafka_log as replica_kafka_log
from schemas.model import DEFAULT_TENANT

# Chatter while the broker is away (each retried connection, each failed read); the command's own error names it.
QUIET = (replica_kafka_log, producer_kafka_log, "mercury.producer", "mercury.schemas.kafka.replica",
         "mercury.ingest.control")


def _show(key: ApiKey, token: str | None, as_json: bool) -> str:
    """A key without its hash; the token only right after minting, since nothing can show it again."""
    shown = key.public() | ({"key": token} if token else {})
    if as_json:
        return orjson.dumps(shown).decode()
    if shown["rate_per_s"] == UNLIMITED:
        shown["rate_per_s"] = "unlimited"
    for moment in ("created_at", "revoked_at"):
        if shown[moment]:
            shown[moment] = show_time(shown[moment])
    lines = [f"{name + ':':12}{','.join(value) if isinstance(value, list) else value}"
             for name, value in shown.items() if value is not None]
    if token:
        lines.append("(the key is shown this once: only its hash is stored)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """`--bootstrap` comes before the verb: every verb talks to the same key topic."""
    parser = argparse.ArgumentParser(prog="mercury keys", description="Mint, list and revoke API keys.")
    parser.add_argument("--bootstrap", help="the Kafka broker (default: KAFKA_BOOTSTRAP, else "
                                            "127.0.0.1:$MERCURY_KAFKA_PORT, 9092 unless set)")
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
    """`mercury keys ...`; exit 1 with the reason on stderr when the request is invalid or the broker is away."""
    args = build_parser().parse_args(argv)
    configure_logging(*QUIET)
    try:
        args.bootstrap = args.bootstrap or endpoints.kafka_bootstrap()
    except ValueError as err:  # a port variable that is not a port
        print(f"error: {err}", file=sys.stderr)
        return 1
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
    except InvalidKeyRequest as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ControlUnavailable as err:
        what = "an unconfirmed write to" if isinstance(err, Unconfirmed) else "no answer from"
        print(f"error: {what} the broker at {args.bootstrap}: {err} (the broker is {endpoints.KAFKA_FROM})",
              file=sys.stderr)
        return 1
    return 0
