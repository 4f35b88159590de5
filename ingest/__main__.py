"""Serve the gateway: `python -m ingest`."""
import logging

import uvicorn

from ingest.config import IngestConfig


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    config = IngestConfig.from_env()
    uvicorn.run(
        "ingest.app:create_app",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        access_log=False,
        loop="uvloop",
        http="httptools",
        log_config=None,
    )


if __name__ == "__main__":
    main()
