"""`mercury`: the operator's command line. `trace`, `report` and `unfinished` read the gateway's analytics API
(deploy/cli/analytics.py), `dead` lists and replays dead letters straight from Kafka (`mercury dead`,
deploy/cli/dead.py), showing its progress on stderr as it reads and replays; `keys` mints, lists and revokes
API keys, also on Kafka (deploy/cli/keys.py). What they print and read alike lives in deploy/cli/output.py.

Where things are comes from schemas.endpoints, as for every Mercury process: the API at MERCURY_API_URL, else on
127.0.0.1 at MERCURY_INGEST_PORT (8080); the broker at KAFKA_BOOTSTRAP, else 127.0.0.1:MERCURY_KAFKA_PORT (9092).
The key for the API is MERCURY_API_KEY. `make run` prints the exports for all three.
"""
import argparse
import os
import sys

from deploy.cli import analytics, dead, keys
from deploy.cli.output import TIME_HELP, configure_logging, parse_duration_s, parse_time


def build_parser() -> argparse.ArgumentParser:
    """`dead` and `keys` are listed for --help only: main hands their arguments to their own parsers."""
    parser = argparse.ArgumentParser(prog="mercury", description="Look into Mercury: a mail's life, the providers, "
                                                                 "dead letters.")
    commands = parser.add_subparsers(dest="command", required=True)
    tracing = commands.add_parser("trace", help="a mail's timeline: every event, provider, timing and reason")
    tracing.add_argument("mail_id")
    reporting = commands.add_parser("report", help="provider success and latency, queue and delivery time")
    reporting.add_argument("--since", type=parse_time, help=f"window start: {TIME_HELP} (default: 1h)")
    reporting.add_argument("--until", type=parse_time, help="window end, like --since (default: now)")
    waiting = commands.add_parser("unfinished", help="mails accepted a while ago with no final event yet, oldest "
                                                     "first")
    waiting.add_argument("--older-than", type=parse_duration_s, default=600.0, metavar="AGE",
                         help="accepted at least this long ago: 90s, 10m, 1h or seconds (default: 10m)")
    waiting.add_argument("--since", type=parse_time, help=f"accepted at or after: {TIME_HELP} (default: 1d)")
    waiting.add_argument("--limit", type=_limit, default=100, metavar="N", help="at most N mails, 1 to 1000 "
                                                                                "(default: 100)")
    for command in (tracing, reporting, waiting):
        command.add_argument("--api", help="the gateway's base URL (default: MERCURY_API_URL, else "
                                           "http://127.0.0.1:$MERCURY_INGEST_PORT)")
    commands.add_parser("dead", help="list or replay dead letters (see `mercury dead --help`)", add_help=False)
    commands.add_parser("keys", help="mint, list or revoke API keys (see `mercury keys --help`)", add_help=False)
    return parser


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 1000):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to 1000")
    return int(text)


def _run(argv: list[str]) -> int:
    if argv[:1] == ["dead"]:
        return dead.main(argv[1:])
    if argv[:1] == ["keys"]:
        return keys.main(argv[1:])
    args = build_parser().parse_args(argv)
    configure_logging()
    return analytics.run(args)


def main(argv: list[str] | None = None) -> int:
    """The `mercury` entry point; returns the exit code.

    A reader that stops early (`mercury dead list | head`) closes the pipe: the command stops quietly, the way the
    Python docs' "Note on SIGPIPE" says (what is left to flush goes to /dev/null; exit 1, as Python exits on EPIPE).
    Ctrl-C stops it without a traceback too (exit 130, as a shell reports SIGINT)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # inside the try: a closed pipe shows here (--help and errors exit through here too)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
