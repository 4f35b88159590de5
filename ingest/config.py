"""Gateway settings from the environment, with safe local defaults."""
import os
from dataclasses import dataclass

# Where the gateway's worker processes keep their Prometheus metrics (prometheus-client multiprocess mode).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class IngestConfig:
    host: str
    port: int
    bootstrap: str
    max_body_bytes: int
    delivery_timeout_ms: int
    workers: int

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "IngestConfig":
        env = dict(os.environ if env is None else env)
        return cls(
            host=env.get("MERCURY_INGEST_HOST", "127.0.0.1"),
            port=int(env.get("MERCURY_INGEST_PORT", "8080")),
            bootstrap=env.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            max_body_bytes=int(env.get("MERCURY_MAX_BODY_BYTES", "900000")),
            delivery_timeout_ms=int(env.get("MERCURY_KAFKA_DELIVERY_TIMEOUT_MS", "5000")),
            workers=int(env.get("MERCURY_INGEST_WORKERS", "2")),
        )
