"""One case's hold on the stack under chaos: its load, its faults, settling, counting and result lines."""
import time
from pathlib import Path

from clickhouse_driver import Client
from sandbox_client import Sandbox

from analytics.connection import connect
from deploy.stack import LocalStack
from schemas.topics import retry_topics, schedule_topics
from tests.chaos.accounting import Tally, settle, tally
from tests.chaos.loadgen import LoadGenerator

RATE = 25.0


class Chaos:
    """One case's view of the stack: load, faults, settling, counting, and the result line."""

    def __init__(self, stack: LocalStack, results: Path) -> None:
        c = stack.config
        self.stack = stack
        self.sandbox = Sandbox({"mailgun": c.mailgun_port, "sendgrid": c.sendgrid_port}, c.sandbox_control_port)
        self.results = results
        self.faults_cleared_at: float | None = None
        self._faulty = False

    @property
    def api(self) -> str:
        return f"{self.stack.config.api_url}/api/v1.0"

    @property
    def bootstrap(self) -> str:
        return self.stack.config.bootstrap

    def clickhouse(self) -> Client:
        return connect({"CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_PORT": str(self.stack.config.clickhouse_port)})

    def load(self, label: str, rate: float = RATE) -> LoadGenerator:
        return LoadGenerator(self.api, self.stack.admin_key, label, rate)

    def fault(self, provider: str, **faults: object) -> float:
        """Inject faults into one provider; returns the wall-clock time (s) just before they applied."""
        at = time.time()
        self._faulty = True
        self.sandbox.set_faults(provider, **faults)
        return at

    def clear_faults(self) -> None:
        """Every provider healthy again; remembers when, for the cool-down before the next case."""
        self.sandbox.clear_faults()
        if self._faulty:
            self._faulty = False
            self.faults_cleared_at = time.monotonic()

    def settle(self, accepted: list[str]) -> None:
        topics_read = [*retry_topics(self.stack.config.child_env()), *schedule_topics()]
        waited = settle(self.sandbox, self.bootstrap, accepted, topics_read)
        print(f"chaos settled_after_s={waited:.1f} mails={len(accepted)}", flush=True)

    def tally(self, case: str, accepted: list[str], **extra: object) -> Tally:
        return tally(case, accepted, self.sandbox, self.bootstrap, self.clickhouse(), **extra)

    def record(self, line: str) -> None:
        """Print a result line and keep it for the end-of-run summary."""
        print(line, flush=True)
        with self.results.open("a") as results:
            results.write(line + "\n")

    def measure(self, name: str, value: float, **labels: object) -> None:
        self.record(" ".join([f"chaos measure={name}", *(f"{k}={v}" for k, v in labels.items()),
                              f"value={round(value)}"]))

    def finish(self, case: str, accepted: list[str], **extra: object) -> Tally:
        """Settle, count and record: the end of every case."""
        self.settle(accepted)
        result = self.tally(case, accepted, **extra)
        self.record(result.line())
        return result

    def assert_passed(self, result: Tally) -> None:
        """Fail the case if a mail was lost or sent twice without the pipeline reporting it ambiguous."""
        assert result.passed, result.explain(self.clickhouse())
