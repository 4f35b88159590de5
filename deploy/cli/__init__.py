"""`mercury`: the operator's command line. `trace` and `report` read the gateway's analytics API
(deploy/cli/analytics.py), `dead` lists and replays dead letters straight from Kafka (`mercury dead`,
deploy/cli/dead.py), showing its progress on stderr as it reads and replays; `keys` mints, lists and revokes
API keys, also on Kafka (deploy/cli/keys.py). What they print alike lives in deploy/cli/output.py.

The API is found at MERCURY_API_URL, else on 127.0.0.1 at MERCURY_INGEST_PORT (8080): what `make run` starts;
the key for it is MERCURY_API_KEY (`make run` prints one).
"""
import argparse
import sys

from deploy.cli import analytics, dead, keys
from deploy.cli.output import configure_logging


def build_parser() -> argparse.ArgumentParser:
    """`dead` and `keys` are listed for --help only: main hands their arguments to their own parsers."""
    parser = argparse.ArgumentParser(prog="mercury", description="Look into Mercury: a mail's life, the providers, "
                                                                 "dead letters.")
    commands = parser.add_subparsers(dest="command", required=True)
    tracing = commands.add_parser("trace", help="a mail's timeline: every event, provider, timing and reason")
    tracing.add_argument("mail_id")
    reporting = commands.add_parser("report", help="provider success and latency, queue and delivery time")
    reporting.add_argument("--since", help="window start: ms since the epoch or RFC 3339 with a timezone "
                                           "(default: one hour ago)")
    reporting.add_argument("--until", help="window end, like --since (default: now)")
    for command in (tracing, reporting):
        command.add_argument("--api", default=analytics.api_url(), help="the gateway's base URL (default: %(default)s)")
    commands.add_parser("dead", help="list or replay dead letters (see `mercury dead --help`)", add_help=False)
    commands.add_parser("keys", help="mint, list or revoke API keys (see `mercury keys --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `mercury` entry point; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dead"]:
        return dead.main(argv[1:])
    if argv[:1] == ["keys"]:
        return keys.main(argv[1:])
    args = build_parser().parse_args(argv)
    configure_logging()
    return analytics.trace(args) if args.command == "trace" else analytics.report(args)
