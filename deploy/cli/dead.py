"""`mercury dead`: list what the pipeline gave up on, and put those mails back into it, straight from Kafka
(the library is dispatcher/dead_letters.py), showing its progress on stderr as it reads and replays.

    mercury dead list   [--reason R]... [--id ID]... [--since T] [--until T] [--json]
    mercury dead replay [--reason R]... [--id ID]... [--since T] [--until T] | --all

The broker is --bootstrap, else KAFKA_BOOTSTRAP, else 127.0.0.1:$MERCURY_KAFKA_PORT (schemas.endpoints), and a
failure to reach it names it.
"""
import argparse
import sys
import time
from collections.abc import Callable

import orjson

from deploy.cli.output import TIME_HELP, configure_logging, one_line, parse_time, show_time
from dispatcher.dead_letters import (
    PROGRESS_EVERY_S,
    Letter,
    LetterReader,
    ReadError,
    ReadStats,
    Selection,
    choose,
    kafka_log,
    replay,
)
from schemas import endpoints, topics
from schemas.kafka.producer import kafka_log as producer_kafka_log
from schemas.vocabulary import DeadReason


def format_letter(letter: Letter) -> str:
    """One letter per line, fields two spaces apart, so a listing reads in a terminal and greps by mail."""
    return "  ".join((show_time(letter.dead_at), letter.mail_id, letter.outcome, letter.source,
                      one_line(letter.reason)))


def letter_json(letter: Letter) -> str:
    """Everything a script needs to pick letters, including where each sits on the topic and if it can replay."""
    return orjson.dumps({
        "dead_at": letter.dead_at,
        "dead_at_iso": show_time(letter.dead_at),
        "mail_id": letter.mail_id,
        "outcome": letter.outcome,
        "reason": letter.reason,
        "source_topic": letter.source_topic,
        "source_partition": letter.source_partition,
        "source_offset": letter.source_offset,
        "partition": letter.partition,
        "offset": letter.offset,
        "replayable": letter.replayable(),
    }).decode()


def build_parser() -> argparse.ArgumentParser:
    """`list` and `replay` take the same filters, so a replay acts on exactly what a listing showed."""
    parser = argparse.ArgumentParser(prog="mercury dead",
                                     description="List dead-lettered mails, or replay them into the pipeline.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="one line per letter in topic order, then the total")
    _add_common(listing)
    listing.add_argument("--json", action="store_true", help="JSON lines instead (the total goes to stderr)")
    replaying = commands.add_parser("replay", help="publish each selected mail's latest letter back to the pipeline")
    _add_common(replaying)
    replaying.add_argument("--all", action="store_true", help="replay every dead-lettered mail")
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="the Kafka broker (default: KAFKA_BOOTSTRAP, else "
                                            "127.0.0.1:$MERCURY_KAFKA_PORT, 9092 unless set)")
    parser.add_argument("--reason", action="append", default=[], choices=[str(r) for r in DeadReason],
                        help="letter outcome (repeatable)")
    parser.add_argument("--id", action="append", default=[], dest="ids", metavar="MAIL_ID",
                        help="mail id (repeatable)")
    parser.add_argument("--since", type=parse_time, help=f"dead_at at or after: {TIME_HELP}")
    parser.add_argument("--until", type=parse_time, help="dead_at before, like --since")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the broker before giving up (default 30)")


def selection_of(args: argparse.Namespace) -> Selection:
    """The filters as the library's Selection; none given selects everything."""
    return Selection(frozenset(args.reason), frozenset(args.ids), args.since, args.until)


def show_progress(stats: ReadStats) -> None:
    """On stderr, so a long read shows it is alive without mixing into the listing on stdout."""
    print(f"reading: {stats.letters} letters, {stats.partitions_done} of {stats.partitions} partitions at their end",
          file=sys.stderr, flush=True)


def run_list(args: argparse.Namespace) -> int:
    """Receipts are bookkeeping, not letters: the listing leaves them out."""
    reader = LetterReader(args.bootstrap, args.timeout, show_progress)
    selection = selection_of(args)
    total = 0
    for letter in reader:
        if not letter.is_receipt and selection.matches(letter):
            total += 1
            print(letter_json(letter) if args.json else format_letter(letter))
    print(f"total: {total}", file=sys.stderr if args.json else sys.stdout)
    _report_unreadable(reader.stats)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """Exit 1 if any selected mail was not taken by the broker, so a script can retry the replay."""
    reader = LetterReader(args.bootstrap, args.timeout, show_progress)
    choice = choose(reader, selection_of(args))
    _report_unreadable(reader.stats)
    replayable = sum(letter.replayable() for letter in choice.letters)
    report = replay(args.bootstrap, choice.letters, args.timeout, _replay_progress(replayable))
    for letter, why in report.not_replayable:
        print(f"not replayable  {letter.mail_id}  {letter.outcome}  {letter.source}  {one_line(why)}")
    for letter, why in report.failed:
        print(f"failed  {letter.mail_id}  {one_line(why)}")
    if report.failed:
        print(f"error: the broker at {args.bootstrap} did not take {len(report.failed)} replays (the broker is "
              f"{endpoints.KAFKA_FROM})", file=sys.stderr)
    print(f"replayed {len(report.replayed)}, not replayable {len(report.not_replayable)}, "
          f"failed {len(report.failed)}, older letters skipped {choice.superseded}, "
          f"already replayed {choice.already_replayed}")
    return 0 if report.ok else 1


def _replay_progress(total: int) -> Callable[[Letter, str | None], None]:
    """One line per acknowledged replay on stdout, a running count on stderr for long replays."""
    done = 0
    last_report = time.monotonic()

    def on_done(letter: Letter, error: str | None) -> None:
        nonlocal done, last_report
        done += 1
        if error is None:
            print(f"replayed  {letter.mail_id}  {letter.outcome}  {letter.source}")
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            print(f"replaying: {done} of {total}", file=sys.stderr, flush=True)
            last_report = time.monotonic()

    return on_done


def _report_unreadable(stats: ReadStats) -> None:
    if stats.unreadable:
        print(f"records on {topics.DEAD} that are not dead letters: {stats.unreadable}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """`mercury dead ...`; a replay takes filters or --all, never both, so replaying everything is asked outright."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "replay" and args.all != selection_of(args).everything:
        parser.error("replay needs a filter (--reason, --id, --since, --until) or --all, not both")
    configure_logging(kafka_log, producer_kafka_log)
    try:
        args.bootstrap = args.bootstrap or endpoints.kafka_bootstrap()
    except ValueError as err:  # a port variable that is not a port
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        return run_list(args) if args.command == "list" else run_replay(args)
    except ReadError as err:
        sys.stdout.flush()
        print(f"error: {err} (the broker is {endpoints.KAFKA_FROM})", file=sys.stderr)
        return 1
