"""`mercury` as an operator runs it: the installed command against the running stack."""
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import post_mail, unique_subject, wait_for, wait_for_event

MERCURY = str(Path(sys.executable).parent / "mercury")


def mercury(stack, *args: str) -> subprocess.CompletedProcess:
    env = {"MERCURY_API_URL": stack.config.api_url, "KAFKA_BOOTSTRAP": stack.config.bootstrap, "PATH": "/usr/bin:/bin",
           "MERCURY_API_KEY": stack.admin_key}
    return subprocess.run([MERCURY, *args], capture_output=True, text=True, timeout=120, env=env)


def test_trace_prints_a_mails_timeline(stack, api, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, error_rate=1, status=503)
    mail_id = post_mail(api, unique_subject("cli-trace"))
    wait_for_event(api, mail_id, "retry_scheduled")
    sandbox.clear_faults()
    wait_for_event(api, mail_id, "sent", timeout=60)
    out = wait_for(lambda: (r := mercury(stack, "trace", mail_id)).returncode == 0 and ": sent;" in r.stdout
                   and r.stdout, what="a finished trace")
    out = wait_for(lambda: (r := mercury(stack, "trace", mail_id)).returncode == 0 and " webhook " in r.stdout
                   and r.stdout, what="the provider's delivered webhook on the trace")
    assert any(" delivered " in line and "recipient=bob@example.com" in line for line in out.splitlines())
    lines = [line for line in out.splitlines() if " webhook " not in line]
    assert lines[0].startswith(f"mail {mail_id}: sent;") and "providers tried:" in lines[0]
    events = [line.split()[2] for line in lines[1:]]
    assert events[0] == "accepted" and events[-1] == "sent"
    failed = [line for line in lines if " attempt_failed " in line]
    assert failed and all("status=503" in line and "cause=provider" in line for line in failed)
    assert any(" retry_scheduled " in line and "level=0" in line for line in lines)


def test_report_prints_provider_and_latency_figures(stack, api, sandbox):
    since = str(int(time.time() * 1000))
    for mail_id in [post_mail(api, unique_subject("cli-report")) for _ in range(3)]:
        wait_for_event(api, mail_id, "sent")
    out = wait_for(lambda: (r := mercury(stack, "report", "--since", since)).returncode == 0
                   and "delivery time: count=" in r.stdout and r.stdout, what="a report with sent mails")
    assert "provider" in out and "queue time:    count=" in out
    assert any(line.startswith(("mailgun", "sendgrid")) and "%" in line for line in out.splitlines())


def test_errors_are_reported_with_the_gateways_reason(stack):
    missing = mercury(stack, "trace", "no-such-mail")
    assert missing.returncode != 0 and "404" in missing.stderr
    bad = mercury(stack, "report", "--since", "yesterday")
    assert bad.returncode != 0 and "422" in bad.stderr


def test_dead_lists_the_letters_on_the_stacks_broker(stack, api, sandbox):
    for provider in sandbox.ports:
        sandbox.set_faults(provider, reject_recipients=["cli-bounce"])
    mail_id = post_mail(api, unique_subject("cli-dead"), recipients="cli-bounce@example.com")
    wait_for_event(api, mail_id, "dead_lettered")
    listed = mercury(stack, "dead", "list", "--id", mail_id)
    assert listed.returncode == 0 and mail_id in listed.stdout and "permanent" in listed.stdout
