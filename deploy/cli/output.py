"""What every `mercury` subcommand prints alike: a text on one line, a moment in time, and its logs on stderr."""
import logging
import os

from schemas import logs
from schemas.events import iso_utc


def one_line(text: str) -> str:
    """Reasons quote provider answers, which may span lines; a listing keeps one record per line."""
    return " ".join(text.split())


def show_time(ms: int | None) -> str:
    """A record's time as the tools print it (ISO 8601 UTC to the millisecond); `-` for a time not set yet."""
    return "-" if ms is None else iso_utc(ms)


def configure_logging(*quiet_unless_debug: logging.Logger) -> None:
    """Logs go to stderr in logfmt (schemas.logs), at MERCURY_LOG_LEVEL (WARNING by default), so stdout holds only
    the command's answer.

    The loggers named are a client library's chatter (librdkafka logs each retried connection): they are
    silenced unless they would log at DEBUG, since the command's own error already names the failure.
    """
    logs.configure_logging(os.environ.get("MERCURY_LOG_LEVEL", "WARNING"))
    for logger in quiet_unless_debug:
        if logger.getEffectiveLevel() > logging.DEBUG:
            logger.setLevel(logging.CRITICAL)
