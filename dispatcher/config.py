"""Dispatcher settings from the environment, with safe local defaults."""
import os
import socket
from dataclasses import dataclass

from dispatcher.ratelimit import parse_rates
from schemas.topics import retry_delays


@dataclass(frozen=True)
class DispatcherConfig:
    bootstrap: str
    worker_id: str
    max_in_flight: int
    send_threads: int
    breaker_failures: int
    breaker_recovery_s: float
    retry_delays: tuple[float, ...]
    retry_ambiguous: bool
    session_timeout_s: float
    rate_limits: dict[str, float]
    ledger_retention_s: float
    metrics_port: int | None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "DispatcherConfig":
        env = dict(os.environ if env is None else env)
        failures = int(env.get("MERCURY_BREAKER_FAILURES", "5"))
        in_flight = int(env.get("MERCURY_DISPATCH_IN_FLIGHT", "200"))
        if in_flight < 1:
            raise ValueError("MERCURY_DISPATCH_IN_FLIGHT must be at least 1")
        recovery = float(env.get("MERCURY_BREAKER_RECOVERY_S", "10"))
        if failures < 1 or recovery <= 0:
            raise ValueError("MERCURY_BREAKER_FAILURES must be >= 1 and MERCURY_BREAKER_RECOVERY_S > 0")
        return cls(
            bootstrap=env.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            worker_id=env.get("MERCURY_WORKER_ID", f"dispatcher-{socket.gethostname()}-{os.getpid()}"),
            max_in_flight=in_flight,
            send_threads=int(env.get("MERCURY_SEND_THREADS", "16")),
            breaker_failures=failures,
            breaker_recovery_s=recovery,
            retry_delays=tuple(retry_delays(env)),
            retry_ambiguous=env.get("MERCURY_RETRY_AMBIGUOUS", "true").lower() in ("1", "true", "yes"),
            session_timeout_s=float(env.get("MERCURY_KAFKA_SESSION_TIMEOUT_S", "6")),
            rate_limits=parse_rates(env.get("MERCURY_RATE_LIMITS", "")),
            ledger_retention_s=float(env.get("MERCURY_LEDGER_RETENTION_H", "168")) * 3600,
            metrics_port=int(port) if (port := env.get("MERCURY_DISPATCHER_METRICS_PORT")) else None,
        )
