"""Log lines are key=value, one per line, whatever the values hold, and read back as they were written."""
import logging

import pytest

from schemas.logs import LogfmtFormatter, parse_line


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


def test_a_line_parses_back_into_its_fields() -> None:
    reason = 'bad "magic"\nbyte\tand a back\\slash = odd'
    fields = parse_line(render("record_skipped", reason=reason, empty="", rows=5))
    assert fields["event"] == "record_skipped" and fields["level"] == "warning" and fields["logger"] == "mercury.test"
    assert fields["reason"] == reason and fields["empty"] == "" and fields["rows"] == "5"


def test_a_field_named_like_a_record_attribute_is_refused() -> None:
    with pytest.raises(KeyError):
        logging.getLogger("mercury.test").warning("oops", extra={"name": "x"})
