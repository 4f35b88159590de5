"""Dispatcher settings from the environment, with safe local defaults; the retry ladder, breakers and rate
limits are only where they start (the API can change them at runtime, see schemas.control.configurations)."""
import os
import socket
from dataclasses import dataclass

from schemas import endpoints
from schemas.control.configurations import BREAKERS, RATE_LIMITS, RETRY_LADDER, environment_values
from schemas.kafka.timings import KafkaTimings


@dataclass(frozen=True)
class DispatcherConfig:
    bootstrap: str
    worker_id: str
    max_in_flight: int
    send_concurrency: int
    breaker_failures: int
    breaker_recovery_s: float
    retry_delays: tuple[float, ...]
    retry_ambiguous: bool
    session_timeout_s: float
    rebalance_timeout_s: float
    kafka: KafkaTimings
    rate_limits: dict[str, float]
    ledger_window_s: float
    metrics_port: int | None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "DispatcherConfig":
        env = dict(os.environ if env is None else env)
        defaults = environment_values(env)
        in_flight = int(env.get("MERCURY_DISPATCH_IN_FLIGHT", "200"))
        if in_flight < 1:
            raise ValueError("MERCURY_DISPATCH_IN_FLIGHT must be at least 1")
        return cls(
            bootstrap=endpoints.kafka_bootstrap(env),
            worker_id=env.get("MERCURY_WORKER_ID", f"dispatcher-{socket.gethostname()}-{os.getpid()}"),
            max_in_flight=in_flight,
            # MERCURY_SEND_THREADS is this setting's name from when each send held a thread.
            send_concurrency=int(env.get("MERCURY_SEND_CONCURRENCY", env.get("MERCURY_SEND_THREADS", "100"))),
            breaker_failures=defaults[BREAKERS]["failures"],
            breaker_recovery_s=defaults[BREAKERS]["recovery_s"],
            retry_delays=tuple(defaults[RETRY_LADDER]["delays_s"]),
            retry_ambiguous=env.get("MERCURY_RETRY_AMBIGUOUS", "true").lower() in ("1", "true", "yes"),
            session_timeout_s=float(env.get("MERCURY_KAFKA_SESSION_TIMEOUT_S", "6")),
            rebalance_timeout_s=float(env.get("MERCURY_KAFKA_REBALANCE_TIMEOUT_S", "30")),
            kafka=KafkaTimings.from_env(env),
            rate_limits=defaults[RATE_LIMITS],
            ledger_window_s=float(env.get("MERCURY_LEDGER_WINDOW_S", "900")),
            metrics_port=int(port) if (port := env.get("MERCURY_DISPATCHER_METRICS_PORT")) else None,
        )

    def configurations(self) -> dict[str, dict]:
        """The runtime-changeable settings as the environment gives them (schemas.control.configurations' shapes)."""
        return {
            RETRY_LADDER: {"delays_s": list(self.retry_delays)},
            BREAKERS: {"failures": self.breaker_failures, "recovery_s": self.breaker_recovery_s},
            RATE_LIMITS: dict(self.rate_limits),
        }
