"""The sandbox's log lines, in the logfmt every Mercury process writes (schemas.logs): startup, shutdown, fault
changes and webhook deliveries (never per send request)."""
import logging
from typing import Any

from schemas.logs import configure_logging

log = logging.getLogger("mercury.sandbox")


def setup() -> None:
    configure_logging()
    # uvicorn's own lines are per server start and stop, which `event` already reports.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


def event(name: str, **fields: Any) -> None:
    """One line: `name` is the event, `fields` its values (none named like a LogRecord attribute)."""
    log.info(name, extra=fields)
