"""Serve the gateway: `python -m ingest`."""
import logging
import os
import shutil
import tempfile

import uvicorn

from ingest.config import MULTIPROC_ENV, IngestConfig
from ingest.control.configurations import ConfigurationsApi
from ingest.control.providers import ProvidersApi
from schemas.logs import configure_logging

log = logging.getLogger("mercury.ingest")


def main() -> None:
    configure_logging()
    try:
        config = IngestConfig.from_env()
        # Every worker builds these from the same environment: refuse a bad one here, once, before any starts.
        ProvidersApi(config.bootstrap)
        ConfigurationsApi(config.bootstrap)
    except ValueError as err:  # TlsConfigInvalid, WebhookKeyInvalid, a bad provider setting, a malformed number
        log.error("ingest_config_invalid", extra={"error_type": type(err).__name__, "error": str(err)})
        raise SystemExit(2) from err
    # Set before any worker imports prometheus_client: each worker then writes its metrics under it, and
    # a fresh directory per start keeps a previous run's counters out of this one's.
    given = os.environ.get(MULTIPROC_ENV)
    metrics_dir = given or tempfile.mkdtemp(prefix="mercury-ingest-metrics-")
    os.makedirs(metrics_dir, exist_ok=True)
    os.environ[MULTIPROC_ENV] = metrics_dir
    log.info("ingest_metrics_dir", extra={"path": metrics_dir})
    log.info("ingest_listening", extra={"host": config.host, "port": config.port,
                                        "scheme": "https" if config.tls else "http"})
    try:
        uvicorn.run(
            "ingest.app:create_worker_app",
            factory=True,
            host=config.host,
            port=config.port,
            workers=config.workers,
            limit_concurrency=config.max_connections,
            access_log=False,
            loop="uvloop",
            http="httptools",
            log_config=None,
            # Each worker loads the pair itself (checked once above, in IngestConfig).
            ssl_certfile=config.tls_cert_file or None,
            ssl_keyfile=config.tls_key_file or None,
        )
    finally:
        if not given:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
