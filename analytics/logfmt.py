"""Structured log lines (logfmt: key=value) so a process's log can be grepped and parsed.

The message is the event name, fields come from `extra=`: `log.info("inserted", extra={"rows": 5000})`
renders `ts=... level=info logger=... event=inserted rows=5000`.
"""
import logging
import os
import time

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _value(value: object) -> str:
    text = str(value)
    if text and not any(ch in text for ch in ' ="\n\t'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields.update((key, value) for key, value in vars(record).items() if key not in _STANDARD)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return " ".join(f"{key}={_value(value)}" for key, value in fields.items())


def configure_logging(level: str | None = None) -> None:
    """Route every logger to stderr in logfmt; level from MERCURY_LOG_LEVEL (default INFO)."""
    handler = logging.StreamHandler()
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("MERCURY_LOG_LEVEL", "INFO")).upper())
