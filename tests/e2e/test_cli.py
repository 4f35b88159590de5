"""`mercury` as an operator runs it: the installed command against the running stack."""
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from deploy.processes import free_port
from schemas import endpoints
from tests.e2e.conftest import post_mail, unique_subject, wait_for, wait_for_event
from tests.e2e.sessions import key_session, new_key, new_tenant

MERCURY = str(Path(sys.executable).parent / "mercury")
# A human offset from the acceptance: +850ms, -0.4s, +1.2s, +3m04s, +2h05m.
OFFSET = re.compile(r"^[+-](\d+ms|\d+\.\ds|\d+m\d\ds|\d+h\d\dm|\d+d\d\dh)$")


def mercury(stack, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The command with the stack's addresses given whole (or `env` as it is, for the settings' own tests)."""
    if env is None:
        env = {"MERCURY_API_URL": stack.config.api_url, "KAFKA_BOOTSTRAP": stack.config.bootstrap,
               "PATH": "/usr/bin:/bin", "MERCURY_API_KEY": stack.admin_key}
    return subprocess.run([MERCURY, *args], capture_output=True, text=True, timeout=120, env=env)


def shifted_env(stack, **extra: str) -> dict[str, str]:
    """What a user of `make run` with shifted ports has: the port variables only, no whole address."""
    return {endpoints.KAFKA_PORT: str(stack.config.kafka_port), endpoints.INGEST_PORT: str(stack.config.ingest_port),
            "PATH": "/usr/bin:/bin", "MERCURY_API_KEY": stack.admin_key, **extra}


@pytest.fixture
def decoys() -> Iterator[list[int]]:
    """Something on the default broker and API ports (9092, 8080) that accepts connections and drops them, as
    another stack or service would; a port already taken is left to whatever holds it. Yields the ports held."""
    held: list[socket.socket] = []
    for port in (endpoints.DEFAULT_PORTS[endpoints.KAFKA_PORT], endpoints.DEFAULT_PORTS[endpoints.INGEST_PORT]):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:
            listener.close()
            continue
        listener.listen(16)
        held.append(listener)

        def drop(sock: socket.socket = listener) -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                conn.close()

        threading.Thread(target=drop, daemon=True).start()
    yield [sock.getsockname()[1] for sock in held]
    for sock in held:
        sock.close()


def test_trace_prints_a_mails_timeline(stack, api, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, error_rate=1, status=503)
    mail_id = post_mail(api, unique_subject("cli-trace"))
    wait_for_event(api, mail_id, "retry_scheduled")
    sandbox.clear_faults()
    wait_for_event(api, mail_id, "sent", timeout=60)
    out = wait_for(lambda: (r := mercury(stack, "trace", mail_id)).returncode == 0 and " webhook " in r.stdout
                   and r.stdout, what="the provider's delivered webhook on the trace")
    assert any(" delivered " in line and "recipient=bob@example.com" in line for line in out.splitlines())
    lines = [line for line in out.splitlines() if " webhook " not in line]
    assert re.match(rf"mail {mail_id}: (sent|delivered);", lines[0]) and "providers tried:" in lines[0]
    assert OFFSET.match(re.search(r"finished \S+ \((\S+)\)", lines[0])[1])
    events = [line.split()[2] for line in lines[1:]]
    assert events[0] == "accepted" and events[-1] == "sent"
    assert all(OFFSET.match(line.split()[1]) for line in lines[1:]), lines
    failed = [line for line in lines if " attempt_failed " in line]
    assert failed and all("status=503" in line and "cause=provider" in line for line in failed)
    (retry, *_) = [line for line in lines if " retry_scheduled " in line]
    # The first level waits 1 s (tests/local_stack.py); the event is stamped a moment after its due time was set.
    assert "level=0" in retry and re.search(r" due=\S+Z \(in (1\.0s|9\d\dms)\)", retry), retry
    sent = next(line for line in lines[1:] if line.split()[2] == "sent")
    assert re.search(r" latency=\d+\.\dms", sent), sent


def test_report_prints_provider_and_latency_figures(stack, api, sandbox):
    since = str(int(time.time() * 1000))
    for mail_id in [post_mail(api, unique_subject("cli-report")) for _ in range(3)]:
        wait_for_event(api, mail_id, "sent")
    out = wait_for(lambda: (r := mercury(stack, "report", "--since", since)).returncode == 0
                   and "delivery time: count=" in r.stdout and r.stdout, what="a report with sent mails")
    assert "provider" in out and "queue time:    count=" in out
    rows = [line for line in out.splitlines() if line.startswith(("mailgun", "sendgrid"))]
    assert rows and all(re.search(r" \d+\.\d% ", row) for row in rows), rows
    assert re.search(r"p50=\d+\.\dms p95=\d+\.\dms", out)
    relative = mercury(stack, "report", "--since", "10m", "--until", "0s")
    assert relative.returncode == 0 and "delivery time: count=" in relative.stdout, relative.stderr


def test_report_with_a_tenants_read_key_skips_the_operator_parts(stack, api):
    tenant = new_tenant()
    token = new_key(api, tenant=tenant, scopes=["read"])["key"]
    reader = key_session(token)
    wait_for(lambda: reader.get(f"{api}/mails/", timeout=10).status_code == 200, what="the gateways to know the key")
    env = {"MERCURY_API_URL": stack.config.api_url, "PATH": "/usr/bin:/bin", "MERCURY_API_KEY": token}
    answer = mercury(stack, "report", env=env)
    assert answer.returncode == 0, answer.stderr
    assert "queue time:" in answer.stdout and "delivery time:" in answer.stdout
    assert "breaker " not in answer.stdout and "feedback " not in answer.stdout
    assert "skipped breakers and feedback" in answer.stderr and "operator" in answer.stderr
    assert "Traceback" not in answer.stderr


def test_errors_name_where_the_command_went(stack):
    missing = mercury(stack, "trace", "no-such-mail")
    assert missing.returncode == 1 and "404" in missing.stderr
    assert f"{stack.config.api_url}/api/v1.0/analytics/mails/no-such-mail/trace" in missing.stderr
    bad = mercury(stack, "report", "--since", "yesterday")
    assert bad.returncode == 2 and "'yesterday' is not a time" in bad.stderr

    wrong_key = mercury(stack, "trace", "x", env={"MERCURY_API_URL": stack.config.api_url, "PATH": "/usr/bin:/bin",
                                                  "MERCURY_API_KEY": "mk_0123456789abcdef_" + "A" * 43})
    assert wrong_key.returncode == 1 and "401" in wrong_key.stderr and "MERCURY_API_KEY" in wrong_key.stderr
    assert stack.config.api_url in wrong_key.stderr
    no_key = mercury(stack, "report", env={"MERCURY_API_URL": stack.config.api_url, "PATH": "/usr/bin:/bin"})
    assert no_key.returncode == 1 and "MERCURY_API_KEY is not set" in no_key.stderr

    away = f"http://127.0.0.1:{free_port()}"
    for args in (("trace", "x"), ("report",), ("unfinished",)):
        gone = mercury(stack, *args, "--api", away)
        assert gone.returncode == 1 and f"no answer from the API at {away}" in gone.stderr, gone.stderr
        assert "Traceback" not in gone.stderr

    nobody = f"127.0.0.1:{free_port()}"
    dead = mercury(stack, "dead", "list", "--bootstrap", nobody, "--timeout", "2")
    assert dead.returncode == 1 and f"broker at {nobody}" in dead.stderr
    keys = mercury(stack, "keys", "--bootstrap", nobody, "list")
    assert keys.returncode == 1 and f"broker at {nobody}" in keys.stderr and "Traceback" not in keys.stderr


def test_every_command_follows_the_shifted_ports_not_the_defaults(stack, api, sandbox, decoys):
    """`make run` with MERCURY_KAFKA_PORT and MERCURY_INGEST_PORT shifted, something else on 9092 and 8080: every
    command reaches the stack the variables name."""
    for provider in sandbox.ports:
        sandbox.set_faults(provider, reject_recipients=["cli-shifted"])
    mail_id = post_mail(api, unique_subject("cli-shifted"), recipients="cli-shifted@example.com")
    wait_for_event(api, mail_id, "dead_lettered")
    env = shifted_env(stack)

    listed = mercury(stack, "dead", "list", "--id", mail_id, "--timeout", "10", env=env)
    assert listed.returncode == 0, listed.stderr
    assert mail_id in listed.stdout and "total: 1" in listed.stdout

    tenant = new_tenant()
    created = mercury(stack, "keys", "create", "--tenant", tenant, "--scope", "read", "--json", env=env)
    assert created.returncode == 0, created.stderr
    minted = orjson.loads(created.stdout)
    wait_for(lambda: key_session(minted["key"]).get(f"{api}/mails/", timeout=10).status_code == 200,
             what="the stack's gateway to know the key minted through the shifted port")
    keys = mercury(stack, "keys", "list", "--tenant", tenant, "--json", env=env)
    assert keys.returncode == 0 and minted["id"] in keys.stdout, keys.stderr

    traced = wait_for(lambda: (r := mercury(stack, "trace", mail_id, env=env)).returncode == 0
                      and "dead_lettered" in r.stdout and r, what="the trace through the shifted API port")
    assert traced.stdout.startswith(f"mail {mail_id}:")
    assert mercury(stack, "unfinished", env=env).returncode == 0


def test_unfinished_lists_the_mails_still_on_their_way(stack, api, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, down=True)
    try:
        mail_id = post_mail(api, unique_subject("cli-unfinished"))
        wait_for_event(api, mail_id, "retry_scheduled")
        out = wait_for(lambda: (r := mercury(stack, "unfinished", "--older-than", "0s", "--since", "10m"))
                       .returncode == 0 and mail_id in r.stdout and r, what="the waiting mail among the unfinished")
    finally:
        sandbox.clear_faults()
    (line,) = [line for line in out.stdout.splitlines() if mail_id in line]
    assert re.search(r" age \S+ ", line) and " attempts " in line and " last " in line, line
    assert "unfinished: " in out.stderr
    older = mercury(stack, "unfinished", "--older-than", "1d", "--limit", "5")
    assert older.returncode == 0 and mail_id not in older.stdout
    assert mercury(stack, "unfinished", "--older-than", "soon").returncode == 2


def test_a_closed_pipe_ends_the_command_quietly(stack, api):
    """`mercury trace … | head`: the reader goes away before the command writes; no traceback, no noise."""
    mail_id = post_mail(api, unique_subject("cli-pipe"))
    wait_for_event(api, mail_id, "sent")
    env = {"MERCURY_API_URL": stack.config.api_url, "KAFKA_BOOTSTRAP": stack.config.bootstrap,
           "PATH": "/usr/bin:/bin", "MERCURY_API_KEY": stack.admin_key}
    for args in (("trace", mail_id), ("dead", "list"), ("keys", "list")):
        proc = subprocess.Popen([MERCURY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        proc.stdout.close()
        _, err = proc.communicate(timeout=120)
        assert "BrokenPipeError" not in err.decode() and "Traceback" not in err.decode(), (args, err.decode())
        assert proc.returncode == 1, (args, err.decode())
