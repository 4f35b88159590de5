"""`mercury trace`, `mercury report` and `mercury unfinished`: a mail's life, the providers' health and the mails
still on their way, read from the gateway's analytics API.

The API is at --api, else MERCURY_API_URL, else on 127.0.0.1 at MERCURY_INGEST_PORT (8080), as schemas.endpoints
says for every tool; the key for it is MERCURY_API_KEY (`make run` prints both). Every failure names the URL called.
"""
import argparse
import os
import sys

import orjson
import requests

from deploy.cli.output import one_line, show_duration, show_ms, show_offset, show_rate, show_time
from ingest.api_root import API
from schemas import endpoints

TIMEOUT_S = 30
# What `report` shows only to an operator key; a tenant's key gets the rest and a note of what was left out.
OPERATOR_PARTS = ("breakers", "feedback")


class ApiFailure(Exception):
    """The gateway did not answer, or refused; the text says where it went and what to change."""

    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _reason(response: requests.Response) -> str:
    """The gateway's own reason, or the start of whatever else answered (a proxy's page, another service)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    return one_line(response.text)[:200] or response.reason or "no reason given"


def _connection_reason(err: requests.RequestException) -> str:
    """`[Errno 111] Connection refused` rather than urllib3's nested pool and connection reprs."""
    if isinstance(err, requests.Timeout):
        return f"no answer within {TIMEOUT_S} s"
    text = one_line(str(err))
    start = text.find("[Errno")
    return text[start:].rstrip("'\")") if start >= 0 else text


def get(api: str, path: str, **params: object) -> dict:
    """One analytics answer; raises ApiFailure naming the URL (and, for a 401, the variable the key comes from)."""
    url = f"{api}{API}/analytics/{path}"
    key = os.environ.get(endpoints.API_KEY, "")
    try:
        response = requests.get(url, params=params, timeout=TIMEOUT_S, headers={"Authorization": f"Bearer {key}"})
    except requests.RequestException as err:
        raise ApiFailure(f"no answer from the API at {api} (GET {url}): {_connection_reason(err)}; the API is "
                         f"{endpoints.API_FROM}") from err
    if response.status_code == 200:
        try:
            return response.json()
        except ValueError as err:
            raise ApiFailure(f"GET {url} answered 200 but not JSON: is {api} Mercury's gateway? "
                             f"(the API is {endpoints.API_FROM})") from err
    reason = _reason(response)
    if response.status_code == 401:
        held = (f"the key is read from {endpoints.API_KEY}" if key else
                f"{endpoints.API_KEY} is not set (`make run` prints an export line)")
        raise ApiFailure(f"401 {reason} (GET {url}; {held}; the API is {endpoints.API_FROM})", 401, reason)
    raise ApiFailure(f"{response.status_code} {reason} (GET {url})", response.status_code, reason)


def _detail(event: dict) -> str:
    """What an event adds to its name: outcome, cause, status, message id, reason, retry level and when it is due,
    the send's latency (to 0.1 ms)."""
    parts = [f"{key}={event[key]}" for key in ("outcome", "cause", "status", "message_id") if event.get(key)]
    try:
        blob = orjson.loads(event.get("blob") or "{}")
    except orjson.JSONDecodeError:
        blob = {}
    if not isinstance(blob, dict):
        return " ".join(parts)
    for key in ("reason", "detail", "level"):
        if blob.get(key) not in (None, ""):
            parts.append(f"{key}={one_line(str(blob[key]))}")
    if isinstance(due := blob.get("due_at"), int):
        parts.append(f"due={show_time(due)} (in {show_duration(due - event['created_at'])})")
    if isinstance(latency := blob.get("latency_ms"), int | float):
        parts.append(f"latency={show_ms(latency)}")
    return " ".join(parts)


def _offset(ms: int | None, accepted: int | None) -> str:
    """Signed: a provider that stamps whole seconds can report a moment before the acceptance."""
    return "" if ms is None or accepted is None else show_offset(ms - accepted)


def trace(args: argparse.Namespace) -> int:
    """`mercury trace MAIL_ID`: events and provider feedback in one timeline, each timed from the acceptance."""
    found = get(args.api, f"mails/{args.mail_id}/trace")
    accepted = found["accepted_at"]
    finished = found["finished_at"]
    status = found["status"] + (f" ({found['bounce']})" if found.get("bounce") else "")
    after = f" ({_offset(finished, accepted)})" if finished is not None and accepted is not None else ""
    print(f"mail {args.mail_id}: {status}; accepted {show_time(accepted)}; finished {show_time(finished)}{after}"
          f"; providers tried: {', '.join(found['providers_tried']) or 'none'}")
    for event in found["events"]:
        print(f"  {show_time(event['created_at'])} {_offset(event['created_at'], accepted):>8} {event['event']:<16} "
              f"{event['provider'] or '-':<10} {event['created_by']:<14} {_detail(event)}".rstrip())
    for report in found["feedback"]:
        extra = " ".join(f"{key}={one_line(str(report[key]))}" for key in ("bounce", "reason", "url") if report[key])
        print(f"  {show_time(report['created_at'])} {_offset(report['created_at'], accepted):>8} "
              f"{report['event']:<16} {report['provider']:<10} {'webhook':<14} "
              f"recipient={report['recipient']} {extra}".rstrip())
    return 0


def _quantiles(stats: dict) -> str:
    if not stats["count"]:
        return "no mails"
    return (f"count={stats['count']} p50={show_ms(stats['p50_ms'])} p95={show_ms(stats['p95_ms'])} "
            f"p99={show_ms(stats['p99_ms'])} max={show_ms(stats['max_ms'])}")


def report(args: argparse.Namespace) -> int:
    """`mercury report`: per provider, then queue and delivery time, breakers and feedback, over one window. The
    fleet-wide parts (breakers, feedback) need an operator key: with a tenant's key they are skipped, said on
    stderr, and the rest is that tenant's."""
    window = {key: value for key, value in (("since", args.since), ("until", args.until)) if value is not None}
    providers = get(args.api, "providers", **window)
    print(f"from {show_time(providers['since'])} to {show_time(providers['until'])}")
    print(f"{'provider':<12}{'attempts':>9}{'sent':>8}{'failed':>8}{'success':>9}  latency")
    for row in providers["providers"]:
        print(f"{row['provider']:<12}{row['attempts']:>9}{row['sent']:>8}{row['failed']:>8}"
              f"{show_rate(row['success_rate']):>9}  {_quantiles(row['latency_ms'])}")
    print(f"queue time:    {_quantiles(get(args.api, 'queue-time', **window)['queue_time'])}")
    print(f"delivery time: {_quantiles(get(args.api, 'delivery-time', **window)['delivery_time'])}")
    answers: dict[str, dict] = {}
    skipped: list[str] = []
    refusal = ""
    for part in OPERATOR_PARTS:
        try:
            answers[part] = get(args.api, part, **window)
        except ApiFailure as err:
            if err.status != 403:
                raise
            skipped.append(part)
            refusal = err.reason
    if "breakers" in answers:
        breakers = answers["breakers"]["breakers"]
        for state in breakers["providers"]:
            throttled = f"; throttled until {show_time(state['throttled_until'])}" if state["throttled_until"] else ""
            print(f"breaker {state['provider']}: {state['state']} since {show_time(state['changed_at'])}{throttled}")
        for change in breakers["changes"]:
            print(f"  {show_time(change['changed_at'])} {change['provider']:<10} {change['state']:<10} "
                  f"by {change['worker']} {one_line(change['reason'])}".rstrip())
    if "feedback" in answers:
        for row in answers["feedback"]["feedback"]:
            counts = " ".join(f"{key}={value}" for key, value in row.items() if key != "provider")
            print(f"feedback {row['provider']}: {counts}")
    if skipped:
        sys.stdout.flush()
        print(f"skipped {' and '.join(skipped)}: fleet-wide, for an operator key only (the gateway answered 403: "
              f"{refusal}); the figures above are this key's tenant's", file=sys.stderr)
    return 0


def unfinished(args: argparse.Namespace) -> int:
    """`mercury unfinished`: one line per mail accepted at least --older-than ago with no final event yet, oldest
    first: when it was accepted, its id, its age, its last event, the provider it last went to, its attempts."""
    params: dict[str, object] = {"older_than_s": args.older_than, "limit": args.limit}
    if args.since is not None:
        params["since"] = args.since
    found = get(args.api, "unfinished", **params)
    for mail in found["mails"]:
        last = (f"{mail['last_event']} at {_offset(mail['last_event_at'], mail['accepted_at'])}"
                if mail["last_event"] else "accepted")
        print(f"{show_time(mail['accepted_at'])}  {mail['mail']}  age {show_duration(mail['age_ms'])}  "
              f"last {last}  provider {mail['last_provider'] or '-'}  attempts {mail['attempts']}")
    more = "; there may be more: raise --limit" if len(found["mails"]) >= args.limit else ""
    print(f"unfinished: {len(found['mails'])} accepted since {show_time(found['since'])} and at least "
          f"{show_duration(args.older_than * 1000)} ago{more}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """Exit 1 with the failure on stderr (never a traceback) when the API is away or refuses."""
    command = {"trace": trace, "report": report, "unfinished": unfinished}[args.command]
    try:
        args.api = (args.api or endpoints.api_url()).rstrip("/")
    except ValueError as err:  # a port variable that is not a port
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        return command(args)
    except ApiFailure as err:
        sys.stdout.flush()
        print(f"error: {err}", file=sys.stderr)
        return 1
