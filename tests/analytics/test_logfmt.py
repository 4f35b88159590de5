"""Log lines are key=value, one per line, whatever the values hold."""
import logging

from analytics.logfmt import LogfmtFormatter


def render(message: str, **fields: object) -> str:
    record = logging.LogRecord("mercury.test", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(fields)
    return LogfmtFormatter().format(record)


def test_event_and_fields_are_key_value_pairs() -> None:
    line = render("insert_failed", table="events", rows=5000, retry_in_s=0.4)
    assert line.startswith("ts=")
    assert line.endswith("level=warning logger=mercury.test event=insert_failed table=events rows=5000 retry_in_s=0.4")


def test_values_with_spaces_quotes_or_newlines_stay_on_one_line() -> None:
    line = render("record_skipped", reason='bad "magic"\nbyte', empty="")
    assert "\n" not in line
    assert 'reason="bad \\"magic\\"\\nbyte" empty=""' in line
