"""Structured log lines (logfmt: key=value) so any Mercury process's log can be grepped and parsed alike.

It lives in `schemas` because every package depends on `schemas` and no other package lies below them all.

The message is the event name, fields come from `extra=`: `log.info("inserted", extra={"rows": 5000})`
renders `ts=... level=info logger=... event=inserted rows=5000`; a value holding a space, `=`, a quote or a
line break is quoted and escaped, so a record is always one line. A field must not be named like a LogRecord
attribute (`name`, `msg`, `args`, `module`, `filename`, `lineno`, `process`, `thread`, ...): logging refuses it.
Lines of other libraries (Faust, aiokafka, librdkafka) come out the same way, their message as the event.
"""
import logging
import os
import re
import sys
import threading
import time
from types import TracebackType
from typing import Any

# A record's own attributes, and uvicorn's copy of its message with terminal colour codes: never fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "color_message"}
_PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')
_UNESCAPE = {"n": "\n", "t": "\t"}


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


def parse_line(text: str) -> dict[str, str]:
    """The fields of one logfmt line, values unquoted and unescaped (all strings)."""
    fields = {}
    for key, raw in _PAIR.findall(text):
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), m.group(1)), raw[1:-1])
        fields[key] = raw
    return fields


def find_events(text: str, event: str) -> list[dict[str, str]]:
    """The lines of a log (`text`, many lines) whose event is `event`, parsed; other lines are skipped."""
    return [fields for fields in map(parse_line, text.splitlines()) if fields.get("event") == event]


def _level(level: str | None) -> str:
    return (level or os.environ.get("MERCURY_LOG_LEVEL", "INFO")).upper()


def logging_config(level: str | None = None) -> dict[str, Any]:
    """What `configure_logging` sets up, as a `logging.config.dictConfig` dictionary: for a framework that
    configures logging itself (Faust's `logging_config` setting), so its lines come out the same."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"logfmt": {"()": LogfmtFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "logfmt", "stream": "ext://sys.stderr"}},
        "root": {"level": _level(level), "handlers": ["stderr"]},
    }


def configure_logging(level: str | None = None) -> None:
    """Route every logger, Python's warnings and uncaught exceptions (of any thread) to stderr in logfmt; level from
    MERCURY_LOG_LEVEL (default INFO)."""
    handler = logging.StreamHandler()
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_level(level))
    logging.captureWarnings(True)
    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread


def _uncaught(kind: type[BaseException], err: BaseException, trace: TracebackType | None) -> None:
    """A traceback as one line (`exc=`), not dozens of raw ones; Ctrl-C keeps Python's own short report."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, err, trace)
        return
    logging.getLogger("mercury.uncaught").error("uncaught_exception", exc_info=(kind, err, trace))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if issubclass(args.exc_type, SystemExit):
        return
    logging.getLogger("mercury.uncaught").error(
        "uncaught_exception", exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        extra={"in_thread": args.thread.name if args.thread else "unknown"})
