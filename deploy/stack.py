"""The whole local stack on one machine, started in order, each part waited for until ready.

`python -m deploy.stack` runs it in the foreground (what `make run` does); tests start the same
`LocalStack` on free ports. Any part that fails to start, or dies later, stops the whole stack.
"""
import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.fernet import Fernet

from deploy.broker import broker_process
from deploy.clickhouse import clickhouse_process
from deploy.processes import ManagedProcess, StartupError, free_port, http_ok
from deploy.topics import create_topics
from deploy.webhook_keys import WEBHOOK_PATH, WebhookKeys
from ingest.api_root import API
from ingest.keys.admin import create_key, store_key
from ingest.keys.api_key import UNLIMITED, ApiKey, Scope
from schemas import endpoints
from schemas.control.secrets import KEY_ENV as SECRETS_KEY_ENV
from schemas.logs import configure_logging, find_events

log = logging.getLogger("mercury.deploy.stack")
ROOT = Path(__file__).resolve().parent.parent
KILL_WAIT_S = 30.0


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    kafka_port: int = endpoints.DEFAULT_PORTS[endpoints.KAFKA_PORT]
    clickhouse_port: int = endpoints.DEFAULT_PORTS[endpoints.CLICKHOUSE_PORT]
    clickhouse_http_port: int = endpoints.DEFAULT_PORTS[endpoints.CLICKHOUSE_HTTP_PORT]
    ingest_port: int = endpoints.DEFAULT_PORTS[endpoints.INGEST_PORT]
    mailgun_port: int = endpoints.DEFAULT_PORTS["MERCURY_SANDBOX_MAILGUN_PORT"]
    sendgrid_port: int = endpoints.DEFAULT_PORTS["MERCURY_SANDBOX_SENDGRID_PORT"]
    postmark_port: int = endpoints.DEFAULT_PORTS["MERCURY_SANDBOX_POSTMARK_PORT"]
    smtp_port: int = endpoints.DEFAULT_PORTS["MERCURY_SANDBOX_SMTP_PORT"]
    sandbox_control_port: int = endpoints.DEFAULT_PORTS["MERCURY_SANDBOX_CONTROL_PORT"]
    dispatchers: int = 2
    partitions: int = 4
    worker_niceness: int = 5
    extra_env: dict[str, str] = field(default_factory=dict)
    # Prometheus port per worker process name ("dispatcher-<n>", "sink"); see with_free_metrics_ports.
    metrics_ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "StackConfig":
        env = dict(os.environ if env is None else env)
        return cls(
            state_dir=Path(env.get("MERCURY_STATE_DIR", str(ROOT / ".state"))).resolve(),
            kafka_port=endpoints.port(endpoints.KAFKA_PORT, env),
            clickhouse_port=endpoints.clickhouse_port(env),
            clickhouse_http_port=endpoints.clickhouse_http_port(env),
            ingest_port=endpoints.port(endpoints.INGEST_PORT, env),
            mailgun_port=endpoints.port("MERCURY_SANDBOX_MAILGUN_PORT", env),
            sendgrid_port=endpoints.port("MERCURY_SANDBOX_SENDGRID_PORT", env),
            postmark_port=endpoints.port("MERCURY_SANDBOX_POSTMARK_PORT", env),
            smtp_port=endpoints.port("MERCURY_SANDBOX_SMTP_PORT", env),
            sandbox_control_port=endpoints.port("MERCURY_SANDBOX_CONTROL_PORT", env),
            dispatchers=int(env.get("MERCURY_DISPATCHERS", "2")),
            partitions=int(env.get("MERCURY_PARTITIONS", "4")),
            worker_niceness=int(env.get("MERCURY_WORKER_NICENESS", "5")),
        ).with_free_metrics_ports()

    @classmethod
    def on_free_ports(cls, state_dir: Path, **overrides: object) -> "StackConfig":
        ports = {name: free_port() for name in (
            "kafka_port", "clickhouse_port", "clickhouse_http_port", "ingest_port",
            "mailgun_port", "sendgrid_port", "postmark_port", "smtp_port", "sandbox_control_port")}
        return replace(cls(state_dir=state_dir), **ports, **overrides).with_free_metrics_ports()

    def with_free_metrics_ports(self) -> "StackConfig":
        """A free port per dispatcher and for the sink: the workers share one host, so no fixed port fits."""
        names = [f"dispatcher-{n}" for n in range(self.dispatchers)] + ["sink"]
        return replace(self, metrics_ports={name: free_port() for name in names})

    def metrics_urls(self) -> dict[str, str]:
        """Where each process serves Prometheus metrics; the gateway serves them itself."""
        workers = {name: f"http://127.0.0.1:{port}/metrics" for name, port in self.metrics_ports.items()}
        return {"ingest": f"{self.api_url}/metrics", **workers}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_control_port}"

    def child_env(self) -> dict[str, str]:
        """What every Mercury process is told about where the others are."""
        return {
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "CLICKHOUSE_HOST": "127.0.0.1",
            "CLICKHOUSE_PORT": str(self.clickhouse_port),
            "MERCURY_INGEST_PORT": str(self.ingest_port),
            "MAILGUN_BASE_URL": f"http://127.0.0.1:{self.mailgun_port}",
            "SENDGRID_BASE_URL": f"http://127.0.0.1:{self.sendgrid_port}",
            # Postmark and the SMTP relay are served too; MERCURY_PROVIDERS (inherited or in extra_env) picks who sends.
            "POSTMARK_BASE_URL": f"http://127.0.0.1:{self.postmark_port}",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp_port),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.logs = config.state_dir / "logs"
        self.processes: dict[str, ManagedProcess] = {}
        # One key set per stack: a restarted sandbox or gateway keeps the environment it was started with.
        self.webhook_keys = WebhookKeys.generate()
        # Provider secrets written through the API are encrypted with this key; the gateway and every dispatcher
        # get the same one (yours if MERCURY_SECRETS_KEY is set), so restarted parts still read them.
        self.secrets_key = os.environ.get(SECRETS_KEY_ENV) or Fernet.generate_key().decode()
        self.admin_key = ""
        self._admin_record: ApiKey | None = None

    def _python(self, name: str, args: list[str], ready, extra_env: dict[str, str] | None = None,
                ready_timeout: float = 60.0, niceness: int = 0) -> ManagedProcess:
        env = {**self.config.child_env(), SECRETS_KEY_ENV: self.secrets_key, **(extra_env or {})}
        return ManagedProcess(name, [sys.executable, *args], self.logs, ready, env=env, cwd=ROOT,
                              ready_timeout=ready_timeout, niceness=niceness)

    def _start(self, proc: ManagedProcess) -> ManagedProcess:
        self.processes[proc.name] = proc
        return proc.start()

    def start(self) -> "LocalStack":
        c = self.config
        try:
            self.start_gateway()
            self.start_sandbox()
            for n in range(c.dispatchers):
                self.start_dispatcher(n)
            self.start_sink()
        except (StartupError, subprocess.SubprocessError, OSError, RuntimeError) as err:
            self.stop()
            raise StartupError(f"the local stack did not start: {err}") from err
        return self

    def start_gateway(self) -> "LocalStack":
        """What the gateway needs to accept mail (the broker, ClickHouse with its tables, the admin key) and the
        gateway itself: the whole stack but for delivery and the event sink. The caller stops what started if it
        raises."""
        c = self.config
        self.logs.mkdir(parents=True, exist_ok=True)
        self.start_broker()
        self._start(clickhouse_process(c.clickhouse_port, c.clickhouse_http_port, c.state_dir / "clickhouse",
                                       self.logs))
        self._mint_admin_key()
        subprocess.run([sys.executable, "-m", "analytics.migrate"], env={**os.environ, **c.child_env()}, cwd=ROOT,
                       check=True, timeout=120)
        self._start(self._python("ingest", ["-m", "ingest"], lambda: http_ok(f"{c.api_url}{API}/"),
                                 self.webhook_keys.ingest_env()))
        return self

    def start_broker(self) -> ManagedProcess:
        """The broker with every topic created: enough, with the sandbox, for a dispatcher on its own."""
        self.logs.mkdir(parents=True, exist_ok=True)
        broker = self._start(broker_process(self.config.kafka_port, self.logs))
        self._create_topics()
        return broker

    def start_sandbox(self, webhooks: bool = True) -> ManagedProcess:
        """`webhooks` off: the providers send no reports back (a bench of the dispatchers alone has no gateway)."""
        c = self.config
        return self._start(self._python(
            "sandbox",
            ["-m", "providers.sandbox", "--mailgun-port", str(c.mailgun_port), "--sendgrid-port",
             str(c.sendgrid_port), "--postmark-port", str(c.postmark_port), "--smtp-port", str(c.smtp_port),
             "--control-port", str(c.sandbox_control_port)],
            lambda: http_ok(f"{c.sandbox_url}/sandbox/health"),
            self.webhook_keys.sandbox_env(c.api_url) if webhooks else {}))

    def start_dispatcher(self, n: int) -> ManagedProcess:
        name = f"dispatcher-{n}"
        # Faust's own line ("[^Worker]: Ready") once the worker joined its group and is consuming.
        return self._start_worker(name, ["-m", "dispatcher"], lambda output: "Ready" in output, {
            "MERCURY_WORKER_ID": name,
            "MERCURY_DISPATCHER_METRICS_PORT": str(self.config.metrics_ports[name]),
        })

    def start_sink(self) -> ManagedProcess:
        return self._start_worker("sink", ["-m", "analytics.sink"],
                                  lambda output: bool(find_events(output, "sink_assigned")),
                                  {"MERCURY_SINK_METRICS_PORT": str(self.config.metrics_ports["sink"])})

    def _start_worker(self, name: str, args: list[str], ready: Callable[[str], bool],
                      extra_env: dict[str, str] | None = None) -> ManagedProcess:
        """A consumer is ready once its log says it has joined its group (`ready` reads what it logged since it
        started); it runs at the workers' niceness."""
        proc = self._python(name, args, lambda: ready(proc.output_since_start()), extra_env,
                            ready_timeout=90, niceness=self.config.worker_niceness)
        return self._start(proc)

    def _create_topics(self) -> None:
        create_topics(self.config.bootstrap, self.config.partitions, {**os.environ, **self.config.child_env()})

    def _mint_admin_key(self) -> None:
        """A key with every scope and no rate limit, for the operator of this stack (and its tests): printed
        at start and kept in <state>/admin-key, readable by its owner only."""
        record, self.admin_key = asyncio.run(create_key(
            self.config.bootstrap, scopes=tuple(Scope), name="local admin", rate_per_s=UNLIMITED))
        self._admin_record = record
        path = self.config.state_dir / "admin-key"
        path.unlink(missing_ok=True)
        path.touch(0o600)
        path.write_text(self.admin_key + "\n")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a part's whole process group and wait until it is gone: SIGKILL is a crash, SIGTERM a
        clean stop (anything still running after the stop timeout is killed)."""
        proc = self.processes[name]
        proc.signal(sig)
        try:
            proc.proc.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            log.warning("kill_timeout", extra={"part": name, "signal": sig})
        proc.stop()

    def restart(self, name: str) -> ManagedProcess:
        """Start a part again with the configuration it had (SIGKILLing it first if it still runs) and wait
        until it is ready. The broker keeps topics in memory only, so they are created again after it:
        the other parts then resume on their own."""
        proc = self.processes[name]
        if proc.alive():
            self.kill(name)
        proc.start()
        if name == "broker":
            self._create_topics()
            asyncio.run(store_key(self.config.bootstrap, self._admin_record))
        return proc

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()

    def dead(self) -> list[str]:
        return [name for name, proc in self.processes.items() if proc.proc is not None and not proc.alive()]


def exports(config: StackConfig, admin_key: str) -> dict[str, str]:
    """What a shell needs for `mercury` and for its own producer to reach this stack (schemas.endpoints reads them),
    however its ports were shifted."""
    return {
        endpoints.API_URL: config.api_url,
        endpoints.API_KEY: admin_key,
        endpoints.KAFKA_BOOTSTRAP: config.bootstrap,
        endpoints.SCHEMA_REGISTRY_URL: f"{config.api_url}{endpoints.SCHEMA_REGISTRY_PATH}",
        endpoints.SANDBOX_URL: config.sandbox_url,
    }


def banner(config: StackConfig, logs: Path, admin_key: str) -> str:
    """What `make run` prints once the stack is up: where each part is, the exports, and a mail to send."""
    metrics = "\n".join(f"    {name + ':':14}{url}" for name, url in config.metrics_urls().items())
    shell = "\n".join(f"  export {name}={value}" for name, value in exports(config, admin_key).items())
    return f"""
Mercury is running. Logs: {logs}
  API:       {config.api_url}{API}/
  Dashboard: {config.api_url}/dashboard
  Sandbox:   {config.sandbox_url}/sandbox/mailgun/messages
  Webhooks:  the sandbox posts signed provider events to {config.api_url}{WEBHOOK_PATH}/<provider> (topic mail.feedback)
  Metrics (Prometheus):
{metrics}
For `mercury`, the dashboard, your own Kafka producer and the README's examples, paste into your shell (the local
API key has every scope; it is also in {config.state_dir / "admin-key"}):
{shell}
Send a mail:
  curl -si -X POST {config.api_url}{API}/mails/ -H 'Authorization: Bearer {admin_key}' \\
       -H 'Content-Type: application/json' \\
       -d '{{"sender": "alice@example.com", "recipients": "bob@example.com", "subject": "Hello", "content": "Hi Bob"}}'
Press Ctrl-C to stop.
"""


def main() -> None:
    configure_logging()
    config = StackConfig.from_env()
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    stack = LocalStack(config)
    try:
        stack.start()
    except StartupError as err:
        log.error("stack_failed", extra={"error": str(err)})
        sys.exit(1)
    print(banner(config, stack.logs, stack.admin_key), flush=True)
    exit_code = 0
    while not stopping.wait(1.0):
        if dead := stack.dead():
            log.error("process_died", extra={"names": ",".join(dead), "logs": stack.logs})
            exit_code = 1
            break
    log.info("stack_stopping")
    stack.stop()
    log.info("stack_stopped")
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
