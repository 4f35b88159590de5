"""Gateway settings from the environment, with safe local defaults."""
import os
from dataclasses import dataclass, field

from ingest.webhook_signatures import load_sendgrid_public_key

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
    # Webhook secrets: empty means that provider's webhook answers 503. Kept out of repr, so never logged.
    mailgun_webhook_signing_key: str = field(default="", repr=False)
    sendgrid_webhook_public_key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        """An unusable webhook key stops the gateway here, before any worker starts (WebhookKeyInvalid)."""
        if self.sendgrid_webhook_public_key:
            load_sendgrid_public_key(self.sendgrid_webhook_public_key)

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
            mailgun_webhook_signing_key=env.get("MERCURY_MAILGUN_WEBHOOK_SIGNING_KEY", "").strip(),
            sendgrid_webhook_public_key=env.get("MERCURY_SENDGRID_WEBHOOK_PUBLIC_KEY", "").strip(),
        )
