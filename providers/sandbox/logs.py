"""Structured logs: one JSON object per line, for startup, shutdown, fault changes and webhook deliveries
(never per send request)."""
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("mercury.sandbox")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # uvicorn's own lines are per server start and stop, which `event` already reports.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


def event(name: str, **fields: Any) -> None:
    log.info(name, extra={"fields": fields})
