"""Gateway settings from the environment, with safe local defaults."""
import os
from dataclasses import dataclass, field

from ingest.tls import CERT_ENV, KEY_ENV, check_tls_files
from ingest.webhooks.sendgrid import load_sendgrid_public_key
from schemas import endpoints
from schemas.kafka.timings import KafkaTimings

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
    # A batch of mails (ingest.mails.batch) may be larger than one mail's body: up to this many bytes in all.
    max_batch_body_bytes: int = 10_000_000
    # Requests per second (and at once) a key may make unless it was given its own; 0 means unlimited.
    key_rate_per_s: float = 100.0
    key_burst: int = 200
    # Connections (and requests in progress) per worker process; past it a request is answered 503 at once.
    max_connections: int = 1000
    # One logfmt line per request (method, route template, status, latency, key id; never a secret).
    access_log: bool = True
    # Webhook secrets: empty means that provider's webhook answers 503. Kept out of repr, so never logged.
    mailgun_webhook_signing_key: str = field(default="", repr=False)
    sendgrid_webhook_public_key: str = field(default="", repr=False)
    # HTTPS when both are given (PEM files); neither means plain HTTP, for a proxy that terminates TLS in front.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    kafka: KafkaTimings = KafkaTimings()

    def __post_init__(self) -> None:
        """An unusable webhook key (WebhookKeyInvalid) or TLS pair (TlsConfigInvalid) stops the gateway here,
        before any worker starts."""
        if not (0 <= self.key_rate_per_s < float("inf")) or self.key_burst < 0:
            raise ValueError("MERCURY_KEY_RATE_PER_S and MERCURY_KEY_BURST must be finite and not negative")
        if self.max_connections < 1:
            raise ValueError("MERCURY_INGEST_MAX_CONNECTIONS must be at least 1")
        if self.sendgrid_webhook_public_key:
            load_sendgrid_public_key(self.sendgrid_webhook_public_key)
        check_tls_files(self.tls_cert_file, self.tls_key_file)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "IngestConfig":
        env = dict(os.environ if env is None else env)
        return cls(
            host=env.get("MERCURY_INGEST_HOST", "127.0.0.1"),
            port=endpoints.port(endpoints.INGEST_PORT, env),
            bootstrap=endpoints.kafka_bootstrap(env),
            max_body_bytes=int(env.get("MERCURY_MAX_BODY_BYTES", "900000")),
            delivery_timeout_ms=int(env.get("MERCURY_KAFKA_DELIVERY_TIMEOUT_MS", "5000")),
            workers=int(env.get("MERCURY_INGEST_WORKERS", "2")),
            max_batch_body_bytes=int(env.get("MERCURY_MAX_BATCH_BODY_BYTES", "10000000")),
            key_rate_per_s=float(env.get("MERCURY_KEY_RATE_PER_S", "100")),
            key_burst=int(env.get("MERCURY_KEY_BURST", "200")),
            max_connections=int(env.get("MERCURY_INGEST_MAX_CONNECTIONS", "1000")),
            access_log=env.get("MERCURY_ACCESS_LOG", "true").strip().lower() not in ("false", "0", "no", "off"),
            mailgun_webhook_signing_key=env.get("MERCURY_MAILGUN_WEBHOOK_SIGNING_KEY", "").strip(),
            sendgrid_webhook_public_key=env.get("MERCURY_SENDGRID_WEBHOOK_PUBLIC_KEY", "").strip(),
            tls_cert_file=env.get(CERT_ENV, "").strip(),
            tls_key_file=env.get(KEY_ENV, "").strip(),
            kafka=KafkaTimings.from_env(env),
        )
