"""`mercury trace` and `mercury report`: a mail's life and the providers' health, read from the gateway's
analytics API.

The API is found at MERCURY_API_URL, else on 127.0.0.1 at MERCURY_INGEST_PORT (8080): what `make run` starts;
the key for it is MERCURY_API_KEY (`make run` prints one).
"""
import argparse
import os

import orjson
import requests

from deploy.cli.output import one_line, show_time
from ingest.api_root import API

TIMEOUT_S = 30


def api_url() -> str:
    """The gateway `make run` starts unless MERCURY_API_URL names another, so the local case needs no flag."""
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
    """`mercury trace MAIL_ID`: events and provider feedback in one timeline, each timed from the acceptance."""
    found = _get(args.api, f"mails/{args.mail_id}/trace")
    accepted = found["accepted_at"]
    print(f"mail {args.mail_id}: {found['status']}; accepted {show_time(accepted)}; "
          f"finished {show_time(found['finished_at'])}"
          f"; providers tried: {', '.join(found['providers_tried']) or 'none'}")
    for event in found["events"]:
        offset = _since(event["created_at"], accepted)
        print(f"  {show_time(event['created_at'])} {offset:>10} {event['event']:<16} "
              f"{event['provider'] or '-':<10} {event['created_by']:<14} {_detail(event)}".rstrip())
    for report in found["feedback"]:
        offset = _since(report["created_at"], accepted)
        extra = " ".join(f"{key}={report[key]}" for key in ("bounce", "reason", "url") if report[key])
        print(f"  {show_time(report['created_at'])} {offset:>10} {report['event']:<16} {report['provider']:<10} "
              f"{'webhook':<14} recipient={report['recipient']} {extra}".rstrip())
    return 0


def _quantiles(stats: dict) -> str:
    if not stats["count"]:
        return "no mails"
    return (f"count={stats['count']} p50={stats['p50_ms']:.0f}ms p95={stats['p95_ms']:.0f}ms "
            f"p99={stats['p99_ms']:.0f}ms max={stats['max_ms']:.0f}ms")


def report(args: argparse.Namespace) -> int:
    """`mercury report`: per provider, then queue and delivery time, breakers and feedback, over one window."""
    window = {key: value for key, value in (("since", args.since), ("until", args.until)) if value}
    providers = _get(args.api, "providers", **window)
    print(f"from {show_time(providers['since'])} to {show_time(providers['until'])}")
    print(f"{'provider':<12}{'attempts':>9}{'sent':>8}{'failed':>8}{'success':>9}  latency")
    for row in providers["providers"]:
        rate = "-" if row["success_rate"] is None else f"{100 * row['success_rate']:.1f}%"
        print(f"{row['provider']:<12}{row['attempts']:>9}{row['sent']:>8}{row['failed']:>8}{rate:>9}  "
              f"{_quantiles(row['latency_ms'])}")
    print(f"queue time:    {_quantiles(_get(args.api, 'queue-time', **window)['queue_time'])}")
    print(f"delivery time: {_quantiles(_get(args.api, 'delivery-time', **window)['delivery_time'])}")
    breakers = _get(args.api, "breakers", **window)["breakers"]
    for state in breakers["providers"]:
        throttled = f"; throttled until {show_time(state['throttled_until'])}" if state["throttled_until"] else ""
        print(f"breaker {state['provider']}: {state['state']} since {show_time(state['changed_at'])}{throttled}")
    for change in breakers["changes"]:
        print(f"  {show_time(change['changed_at'])} {change['provider']:<10} {change['state']:<10} "
              f"by {change['worker']} {one_line(change['reason'])}".rstrip())
    for row in _get(args.api, "feedback", **window)["feedback"]:
        counts = " ".join(f"{key}={value}" for key, value in row.items() if key != "provider")
        print(f"feedback {row['provider']}: {counts}")
    return 0
