"""Where things are (schemas.endpoints), read alike by every process, the local stack and `mercury`; the stack's
banner; the CLI's times, spans and figures; and a closed pipe. None of these needs a running stack."""
import argparse
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from analytics.connection import connect
from analytics.sink import SinkConfig
from deploy.cli.output import (
    duration_ms,
    parse_duration_s,
    parse_time,
    show_duration,
    show_ms,
    show_offset,
    show_rate,
)
from deploy.processes import free_port
from deploy.stack import StackConfig, banner, exports
from dispatcher.config import DispatcherConfig
from ingest.config import IngestConfig
from schemas import endpoints
from schemas.events import now_ms

MERCURY = str(Path(sys.executable).parent / "mercury")
NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SHIFTED = {"MERCURY_KAFKA_PORT": "19092", "MERCURY_INGEST_PORT": "18080", "CLICKHOUSE_PORT": "19000",
           "MERCURY_CLICKHOUSE_HTTP_PORT": "18123", "MERCURY_SANDBOX_CONTROL_PORT": "18029"}


def test_the_defaults_are_the_local_stacks():
    assert endpoints.kafka_bootstrap({}) == "127.0.0.1:9092"
    assert endpoints.api_url({}) == "http://127.0.0.1:8080"
    assert endpoints.schema_registry_url({}) == "http://127.0.0.1:8080/schema-registry"
    assert endpoints.sandbox_url({}) == "http://127.0.0.1:8029"
    assert (endpoints.clickhouse_host({}), endpoints.clickhouse_port({}), endpoints.clickhouse_http_port({})) == (
        "127.0.0.1", 9000, 8123)


def test_a_shifted_port_moves_every_address_and_a_whole_address_wins():
    assert endpoints.kafka_bootstrap(SHIFTED) == "127.0.0.1:19092"
    assert endpoints.api_url(SHIFTED) == "http://127.0.0.1:18080"
    assert endpoints.schema_registry_url(SHIFTED) == "http://127.0.0.1:18080/schema-registry"
    assert endpoints.sandbox_url(SHIFTED) == "http://127.0.0.1:18029"
    assert (endpoints.clickhouse_port(SHIFTED), endpoints.clickhouse_http_port(SHIFTED)) == (19000, 18123)
    given = {**SHIFTED, "KAFKA_BOOTSTRAP": "kafka-1:9093,kafka-2:9093", "MERCURY_API_URL": "https://mail.example/",
             "CLICKHOUSE_HOST": "ch.internal"}
    assert endpoints.kafka_bootstrap(given) == "kafka-1:9093,kafka-2:9093"
    assert endpoints.api_url(given) == "https://mail.example"
    assert endpoints.schema_registry_url(given) == "https://mail.example/schema-registry"
    assert endpoints.clickhouse_host(given) == "ch.internal"
    assert endpoints.kafka_bootstrap({"KAFKA_BOOTSTRAP": "", "MERCURY_KAFKA_PORT": "19092"}) == "127.0.0.1:19092"


def test_a_port_that_is_not_one_is_named():
    for bad in ("abc", "0", "70000", "-1"):
        with pytest.raises(ValueError, match=f"MERCURY_KAFKA_PORT must be a port number.*{bad}"):
            endpoints.kafka_bootstrap({"MERCURY_KAFKA_PORT": bad})


def test_every_process_reads_the_same_settings():
    """The gateway, the dispatcher, the sink and ClickHouse clients follow a shifted port as the stack does."""
    stack = StackConfig.from_env({**SHIFTED, "MERCURY_STATE_DIR": "/tmp/unused"})
    assert IngestConfig.from_env(SHIFTED).bootstrap == stack.bootstrap == "127.0.0.1:19092"
    assert IngestConfig.from_env(SHIFTED).port == stack.ingest_port == 18080
    assert DispatcherConfig.from_env(SHIFTED).bootstrap == "127.0.0.1:19092"
    assert SinkConfig.from_env(SHIFTED).bootstrap == "127.0.0.1:19092"
    assert list(connect(SHIFTED).connection.hosts) == [("127.0.0.1", stack.clickhouse_port)] == [("127.0.0.1", 19000)]
    assert (stack.clickhouse_http_port, stack.sandbox_control_port) == (18123, 18029)
    assert stack.api_url == endpoints.api_url(SHIFTED) and stack.sandbox_url == endpoints.sandbox_url(SHIFTED)


def test_the_banner_prints_the_exports_the_tools_read(tmp_path):
    config = StackConfig.from_env({**SHIFTED, "MERCURY_STATE_DIR": str(tmp_path)})
    shown = banner(config, tmp_path / "logs", "mk_0123456789abcdef_secret")
    pasted = dict(re.findall(r"^  export (\w+)=(\S+)$", shown, re.MULTILINE))
    assert pasted == exports(config, "mk_0123456789abcdef_secret")
    assert pasted["MERCURY_API_KEY"] == "mk_0123456789abcdef_secret"
    # What the shell then holds sends every tool to this stack.
    assert endpoints.api_url(pasted) == "http://127.0.0.1:18080"
    assert endpoints.kafka_bootstrap(pasted) == "127.0.0.1:19092"
    assert endpoints.schema_registry_url(pasted) == "http://127.0.0.1:18080/schema-registry"
    assert endpoints.sandbox_url(pasted) == "http://127.0.0.1:18029"
    assert "curl -si -X POST http://127.0.0.1:18080/api/v1.0/mails/" in shown


@pytest.mark.parametrize(("text", "ms"), [
    ("90s", NOW - 90_000), ("30m", NOW - 1_800_000), ("1h", NOW - 3_600_000), ("7d", NOW - 7 * 86_400_000),
    ("2w", NOW - 14 * 86_400_000), ("1h30m", NOW - 5_400_000), ("1.5h", NOW - 5_400_000), ("500ms", NOW - 500),
    ("0s", NOW), ("now", NOW), (" 10m ", NOW - 600_000),
    ("1767225600000", NOW), ("2026-01-01T00:00:00Z", NOW), ("2026-01-01T01:00:00+01:00", NOW),
    ("2026-01-01T00:00:00.250Z", NOW + 250),
])
def test_times_are_relative_rfc_3339_or_ms(text, ms):
    assert parse_time(text, now=NOW) == ms


@pytest.mark.parametrize(("text", "why"), [
    ("yesterday", "is not a time"), ("2026-01-01T00:00:00", "no timezone"), ("1y", "is not a time"),
    ("h", "is not a time"), ("", "is not a time"), ("1.5", "is not a time"), ("-1h", "is not a time"),
])
def test_what_is_not_a_time_is_refused_with_the_forms_that_are(text, why):
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        parse_time(text, now=NOW)


def test_durations():
    assert parse_duration_s("10m") == 600 and parse_duration_s("90s") == 90 and parse_duration_s("1h") == 3600
    assert parse_duration_s("45") == 45 and parse_duration_s("0") == 0 and parse_duration_s("1d") == 86_400
    assert duration_ms("1h5m") == 3_900_000 and duration_ms("soon") is None
    for bad in ("soon", "-5", "nan", "inf", "10 minutes"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
            parse_duration_s(bad)


@pytest.mark.parametrize(("ms", "shown"), [
    (0, "+0ms"), (850, "+850ms"), (999, "+999ms"), (1000, "+1.0s"), (1234, "+1.2s"), (59_949, "+59.9s"),
    (59_960, "+1m00s"), (184_000, "+3m04s"), (3_599_600, "+1h00m"), (7_500_000, "+2h05m"),
    (273_600_000, "+3d04h"), (-400, "-400ms"), (-1_500, "-1.5s"),
])
def test_offsets_read_like_a_person_would_say_them(ms, shown):
    assert show_offset(ms) == shown
    assert show_duration(ms) == shown[1:]


def test_figures_are_rounded():
    assert show_ms(6.613321999793698) == "6.6ms" and show_ms(None) == "-" and show_ms(1234) == "1234.0ms"
    assert show_rate(0.98765) == "98.8%" and show_rate(1) == "100.0%" and show_rate(None) == "-"


class StubApi:
    """A stand-in gateway: each analytics path answers what the test set (status, JSON), anything else 404."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, object]] = {}
        self.asked: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0].removeprefix("/api/v1.0/analytics/")
                stub.asked.append(self.path)
                status, body = stub.answers.get(path, (404, {"error": "not here"}))
                data = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def run(self, *args: str, key: str = "mk_test") -> subprocess.CompletedProcess:
        env = {"MERCURY_API_URL": self.url, "PATH": "/usr/bin:/bin", "MERCURY_API_KEY": key}
        return subprocess.run([MERCURY, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def stub() -> Iterator[StubApi]:
    api = StubApi()
    yield api
    api.server.shutdown()
    api.server.server_close()


def _event(event: str, at: int, provider: str | None = None, **blob: object) -> dict:
    return {"event": event, "created_at": at, "created_by": "dispatcher-0", "provider": provider, "outcome": None,
            "cause": None, "status": None, "message_id": None, "blob": orjson.dumps(blob).decode() if blob else ""}


TRACE = {
    "accepted_at": NOW, "finished_at": NOW + 184_000, "status": "sent", "providers_tried": ["mailgun"],
    "events": [_event("accepted", NOW), _event("dispatched", NOW + 20, "mailgun"),
               _event("retry_scheduled", NOW + 1_234, level=0, due_at=NOW + 31_234, delay_s=30, reason="mailgun: 503"),
               _event("sent", NOW + 184_000, "mailgun", latency_ms=6.613321999793698)],
    "feedback": [],
}
STATS = {"count": 2, "p50_ms": 6.613321999793698, "p95_ms": 7.05, "p99_ms": 7.1, "max_ms": 7.2}


def test_the_trace_reads_in_human_offsets_rounded_figures_and_the_retrys_due_time(stub):
    stub.answers["mails/m-1/trace"] = (200, TRACE)
    out = stub.run("trace", "m-1")
    assert out.returncode == 0, out.stderr
    header, accepted, dispatched, retry, sent = out.stdout.splitlines()
    assert header == ("mail m-1: sent; accepted 2026-01-01T00:00:00.000Z; finished 2026-01-01T00:03:04.000Z "
                      "(+3m04s); providers tried: mailgun")
    assert [line.split()[1] for line in (accepted, dispatched, retry, sent)] == ["+0ms", "+20ms", "+1.2s", "+3m04s"]
    assert retry.endswith("level=0 due=2026-01-01T00:00:31.234Z (in 30.0s)"), retry
    assert "reason=mailgun: 503" in retry and sent.endswith("latency=6.6ms")


def test_a_closed_pipe_ends_the_command_quietly(stub):
    """`mercury trace … | head` with the reader gone before the command writes: no traceback, no "Exception
    ignored", exit 1 as the Python docs' note on SIGPIPE does."""
    stub.answers["mails/m-1/trace"] = (200, TRACE)
    env = {"MERCURY_API_URL": stub.url, "PATH": "/usr/bin:/bin", "MERCURY_API_KEY": "mk_test"}
    proc = subprocess.Popen([MERCURY, "trace", "m-1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert err.decode() == "" and proc.returncode == 1
    assert stub.asked, "the command never got as far as writing"


def test_a_tenants_report_skips_the_operator_parts_and_says_so(stub):
    window = {"since": NOW - 3_600_000, "until": NOW}
    stub.answers.update({
        "providers": (200, {**window, "providers": [{"provider": "mailgun", "attempts": 3, "sent": 2, "failed": 1,
                                                      "success_rate": 2 / 3, "latency_ms": STATS}]}),
        "queue-time": (200, {**window, "queue_time": STATS}),
        "delivery-time": (200, {**window, "delivery_time": STATS}),
        "breakers": (403, {"error": "this API key lacks the operator scope", "field": None}),
        "feedback": (403, {"error": "this API key lacks the operator scope", "field": None}),
    })
    out = stub.run("report", "--since", "1h")
    assert out.returncode == 0, out.stderr
    assert "mailgun             3       2       1    66.7%  count=2 p50=6.6ms p95=7.0ms" in out.stdout, out.stdout
    assert out.stdout.splitlines()[-1].startswith("delivery time: count=2")
    assert out.stderr.startswith("skipped breakers and feedback: fleet-wide, for an operator key only")
    assert "lacks the operator scope" in out.stderr
    since = int(re.search(r"since=(\d+)", stub.asked[0])[1])
    assert abs(since - (now_ms() - 3_600_000)) < 60_000

    stub.answers["breakers"] = (500, {"error": "ClickHouse is away"})
    failed = stub.run("report")
    assert failed.returncode == 1 and f"error: 500 ClickHouse is away (GET {stub.url}/api/v1.0/analytics/breakers)" \
        in failed.stderr


def test_a_401_names_the_variable_and_the_url(stub):
    stub.answers["mails/m-1/trace"] = (401, {"error": "the API key is not valid: unknown, revoked or mistyped"})
    out = stub.run("trace", "m-1")
    assert out.returncode == 1
    assert out.stderr.startswith("error: 401 the API key is not valid: unknown, revoked or mistyped (GET "
                                 f"{stub.url}/api/v1.0/analytics/mails/m-1/trace; the key is read from "
                                 "MERCURY_API_KEY;"), out.stderr
    assert "MERCURY_API_KEY is not set" in stub.run("trace", "m-1", key="").stderr


def test_unfinished_prints_one_line_per_mail(stub):
    stub.answers["unfinished"] = (200, {"since": NOW - 86_400_000, "until": NOW, "mails": [
        {"mail": "m-1", "accepted_at": NOW - 900_000, "last_event": "retry_scheduled",
         "last_event_at": NOW - 898_800, "last_provider": "mailgun", "attempts": 2, "age_ms": 900_000},
        {"mail": "m-2", "accepted_at": NOW - 700_000, "last_event": None, "last_event_at": None,
         "last_provider": None, "attempts": 0, "age_ms": 700_000},
    ]})
    out = stub.run("unfinished", "--older-than", "10m", "--since", "1d", "--limit", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "2025-12-31T23:45:00.000Z  m-1  age 15m00s  last retry_scheduled at +1.2s  provider mailgun  attempts 2",
        "2025-12-31T23:48:20.000Z  m-2  age 11m40s  last accepted  provider -  attempts 0",
    ]
    assert "unfinished: 2" in out.stderr and "raise --limit" in out.stderr
    (asked,) = stub.asked
    assert "older_than_s=600.0" in asked and "limit=2" in asked and re.search(r"since=\d{13}", asked)


def test_the_commands_go_where_the_port_variables_say_and_say_so():
    """Nothing listens on the shifted ports: each command's failure names the address it was sent to."""
    kafka, ingest = free_port(), free_port()
    env = {"MERCURY_KAFKA_PORT": str(kafka), "MERCURY_INGEST_PORT": str(ingest), "PATH": "/usr/bin:/bin",
           "MERCURY_API_KEY": "mk_x"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([MERCURY, *args], capture_output=True, text=True, timeout=120, env=env)

    dead = run("dead", "list", "--timeout", "2")
    assert dead.returncode == 1 and f"no answer from the broker at 127.0.0.1:{kafka}" in dead.stderr, dead.stderr
    keys = run("keys", "list")
    assert keys.returncode == 1 and f"no answer from the broker at 127.0.0.1:{kafka}" in keys.stderr, keys.stderr
    assert "MERCURY_KAFKA_PORT" in keys.stderr and "Traceback" not in keys.stderr
    for command in (["trace", "x"], ["report"], ["unfinished"]):
        away = run(*command)
        assert away.returncode == 1 and f"no answer from the API at http://127.0.0.1:{ingest}" in away.stderr
    broken = subprocess.run([MERCURY, "dead", "list"], capture_output=True, text=True, timeout=60,
                            env={**env, "MERCURY_KAFKA_PORT": "ninety"})
    assert broken.returncode == 1 and "MERCURY_KAFKA_PORT must be a port number" in broken.stderr
