"""What every `mercury` subcommand prints and reads alike: a text on one line, a moment in time (shown, and read from
`--since`/`--until`), a duration, a figure rounded for reading, and its logs on stderr."""
import argparse
import logging
import os
import re
from datetime import UTC, datetime, timedelta

from schemas import logs
from schemas.events import iso_utc, now_ms

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
# One or more amounts with a unit each, largest first or not: 90s, 30m, 1h, 7d, 2w, 1h30m, 1.5h, 500ms.
_DURATION = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w))+\s*")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
TIME_HELP = "a relative time (90s, 30m, 1h, 7d: that long ago), RFC 3339 with a timezone, or ms since the epoch"


def one_line(text: str) -> str:
    """Reasons quote provider answers, which may span lines; a listing keeps one record per line."""
    return " ".join(text.split())


def show_time(ms: int | None) -> str:
    """A record's time as the tools print it (ISO 8601 UTC to the millisecond); `-` for a time not set yet."""
    return "-" if ms is None else iso_utc(ms)


def show_duration(ms: float) -> str:
    """A span as a person reads it: 850ms, 1.2s, 3m04s, 2h05m, 3d04h (never negative: see show_offset)."""
    ms = abs(ms)
    if ms < 1000:
        return f"{ms:.0f}ms"
    if (tenths := round(ms / 100)) < 600:
        return f"{tenths / 10:.1f}s"
    if (seconds := round(ms / 1000)) < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if (minutes := round(ms / 60_000)) < 1440:
        return f"{minutes // 60}h{minutes % 60:02d}m"
    hours = round(ms / 3_600_000)
    return f"{hours // 24}d{hours % 24:02d}h"


def show_offset(ms: float) -> str:
    """A signed span from a reference moment: +1.2s, +3m04s; -0.4s when a provider's clock stamps before it."""
    return f"{'-' if ms < 0 else '+'}{show_duration(ms)}"


def show_ms(value: float | None) -> str:
    """A latency or a time in ms, to 0.1 ms (the adapters measure to the nanosecond; nobody reads that)."""
    return "-" if value is None else f"{value:.1f}ms"


def show_rate(ratio: float | None) -> str:
    """A ratio as a percentage to 0.1 %."""
    return "-" if ratio is None else f"{100 * ratio:.1f}%"


def duration_ms(text: str) -> int | None:
    """`90s`, `30m`, `1h`, `7d`, `2w`, `1h30m`, `500ms` in ms; None when the text is not a duration."""
    if not _DURATION.fullmatch(text):
        return None
    return round(sum(float(amount) * UNIT_MS[unit] for amount, unit in _PART.findall(text)))


def parse_duration_s(text: str) -> float:
    """For argparse: a duration (`10m`, `90s`, `1h`) or a plain number of seconds, in seconds."""
    ms = duration_ms(text.strip())
    if ms is not None:
        return ms / 1000
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give 90s, 10m, 1h, 7d or seconds")
    return seconds


def parse_time(text: str, now: int | None = None) -> int:
    """For argparse: a moment in ms since the epoch. A relative time (`1h`: an hour before `now`), `now`, ms since
    the epoch, or ISO 8601 / RFC 3339 with a timezone (a naive time would depend on the host's zone)."""
    stripped = text.strip()
    if stripped.lstrip("-").isdigit() and stripped.isascii():
        return int(stripped)
    now = now_ms() if now is None else now
    if stripped.lower() == "now":
        return now
    if (ago := duration_ms(stripped)) is not None:
        return now - ago
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: give {TIME_HELP}") from err
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no timezone (add Z or +hh:mm)")
    return (moment - EPOCH) // timedelta(milliseconds=1)


def configure_logging(*quiet_unless_debug: logging.Logger | str) -> None:
    """Logs go to stderr in logfmt (schemas.logs), at MERCURY_LOG_LEVEL (WARNING by default), so stdout holds only
    the command's answer.

    The loggers named are a client library's chatter (librdkafka logs each retried connection): they are
    silenced unless they would log at DEBUG, since the command's own error already names the failure.
    """
    logs.configure_logging(os.environ.get("MERCURY_LOG_LEVEL", "WARNING"))
    for logger in quiet_unless_debug:
        logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        if logger.getEffectiveLevel() > logging.DEBUG:
            logger.setLevel(logging.CRITICAL)
