"""`mercury`: the operator's command line. `trace` and `report` read the gateway's analytics API, `dead`
lists and replays dead letters straight from Kafka (`python -m dispatcher.dead_letters`), showing its
progress on stderr as it reads and replays; `keys` mints, lists and revokes API keys, also on Kafka.

The API is found at MERCURY_API_URL, else on 127.0.0.1 at MERCURY_INGEST_PORT (8080): what `make run` starts;
the key for it is MERCURY_API_KEY (`make run` prints one).
"""
import argparse
import os
import sys

import orjson
import requests

from dispatcher import dead_letters
from dispatcher.dead_letters import one_line
from ingest import key_admin
from ingest.api_root import API
from schemas.events import iso_utc

TIMEOUT_S = 30


def api_url() -> str:
    return os.environ.get("MERCURY_API_URL", f"http://127.0.0.1:{os.environ.get('MERCURY_INGEST_PORT', '8080')}")


def _get(api: str, path: str, **params: object) -> dict:
    """One analytics answer; raises SystemExit with the gateway's own reason when it refuses."""
    try:
        response = requests.get(f"{api}{API}/analytics/{path}", params=params, timeout=TIMEOUT_S,
                                headers={"Authorization": f"Bearer {os.environ.get('MERCURY_API_KEY', '')}"})
    except requests.RequestException as err:
        raise SystemExit(f"error: the API at {api} did not answer: {err}") from err
    if response.status_code != 200:
        raise SystemExit(f"error: {response.status_code} {response.json().get('error', response.text)}")
    return response.json()


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return iso_utc(ms)


def _since(ms: int, accepted: int | None) -> str:
    """Signed: a provider that stamps whole seconds can report a moment before the acceptance."""
    return "" if accepted is None else f"{ms - accepted:+d}ms"


def _detail(event: dict) -> str:
    """What an event adds to its name: outcome, cause, status, message id or reason."""
    parts = [f"{key}={event[key]}" for key in ("outcome", "cause", "status", "message_id") if event.get(key)]
    try:
        blob = orjson.loads(event.get("blob") or "{}")
    except orjson.JSONDecodeError:
        blob = {}
    for key in ("reason", "detail", "level", "latency_ms"):
        if isinstance(blob, dict) and blob.get(key) not in (None, ""):
            parts.append(f"{key}={blob[key]}")
    return " ".join(parts)


def trace(args: argparse.Namespace) -> int:
    found = _get(args.api, f"mails/{args.mail_id}/trace")
    accepted = found["accepted_at"]
    print(f"mail {args.mail_id}: {found['status']}; accepted {_time(accepted)}; finished {_time(found['finished_at'])}"
          f"; providers tried: {', '.join(found['providers_tried']) or 'none'}")
    for event in found["events"]:
        offset = _since(event["created_at"], accepted)
        print(f"  {_time(event['created_at'])} {offset:>10} {event['event']:<16} {event['provider'] or '-':<10} "
              f"{event['created_by']:<14} {_detail(event)}".rstrip())
    for report in found["feedback"]:
        offset = _since(report["created_at"], accepted)
        extra = " ".join(f"{key}={report[key]}" for key in ("bounce", "reason", "url") if report[key])
        print(f"  {_time(report['created_at'])} {offset:>10} {report['event']:<16} {report['provider']:<10} "
              f"{'webhook':<14} recipient={report['recipient']} {extra}".rstrip())
    return 0


def _quantiles(stats: dict) -> str:
    if not stats["count"]:
        return "no mails"
    return (f"count={stats['count']} p50={stats['p50_ms']:.0f}ms p95={stats['p95_ms']:.0f}ms "
            f"p99={stats['p99_ms']:.0f}ms max={stats['max_ms']:.0f}ms")


def report(args: argparse.Namespace) -> int:
    window = {key: value for key, value in (("since", args.since), ("until", args.until)) if value}
    providers = _get(args.api, "providers", **window)
    print(f"from {_time(providers['since'])} to {_time(providers['until'])}")
    print(f"{'provider':<12}{'attempts':>9}{'sent':>8}{'failed':>8}{'success':>9}  latency")
    for row in providers["providers"]:
        rate = "-" if row["success_rate"] is None else f"{100 * row['success_rate']:.1f}%"
        print(f"{row['provider']:<12}{row['attempts']:>9}{row['sent']:>8}{row['failed']:>8}{rate:>9}  "
              f"{_quantiles(row['latency_ms'])}")
    print(f"queue time:    {_quantiles(_get(args.api, 'queue-time', **window)['queue_time'])}")
    print(f"delivery time: {_quantiles(_get(args.api, 'delivery-time', **window)['delivery_time'])}")
    breakers = _get(args.api, "breakers", **window)["breakers"]
    for state in breakers["providers"]:
        throttled = f"; throttled until {_time(state['throttled_until'])}" if state["throttled_until"] else ""
        print(f"breaker {state['provider']}: {state['state']} since {_time(state['changed_at'])}{throttled}")
    for change in breakers["changes"]:
        print(f"  {_time(change['changed_at'])} {change['provider']:<10} {change['state']:<10} by {change['worker']} "
              f"{one_line(change['reason'])}".rstrip())
    for row in _get(args.api, "feedback", **window)["feedback"]:
        counts = " ".join(f"{key}={value}" for key, value in row.items() if key != "provider")
        print(f"feedback {row['provider']}: {counts}")
    return 0


def build_parser() -> argparse.ArgumentParser:
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
        command.add_argument("--api", default=api_url(), help="the gateway's base URL (default: %(default)s)")
    commands.add_parser("dead", help="list or replay dead letters (see `mercury dead --help`)", add_help=False)
    commands.add_parser("keys", help="mint, list or revoke API keys (see `mercury keys --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dead"]:
        return dead_letters.main(argv[1:])
    if argv[:1] == ["keys"]:
        return key_admin.main(argv[1:])
    args = build_parser().parse_args(argv)
    return trace(args) if args.command == "trace" else report(args)


if __name__ == "__main__":
    sys.exit(main())
