"""send_at: how a request body spells it, and how far ahead any mail may be scheduled."""
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from ingest.mails.request_body import mail_from_body
from schemas.events import now_ms
from schemas.model import Mail
from schemas.validation import MAX_SCHEDULE_DAYS, InvalidMail, check_mail

DAY_MS = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
GOOD = {"sender": "alice@example.com", "recipients": "bob@example.com", "subject": "s", "content": "c"}


def parsed(send_at: object) -> int:
    return mail_from_body(orjson.dumps({**GOOD, "send_at": send_at}), "m1").send_at


def ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def in_days(days: float) -> datetime:
    return datetime.fromtimestamp(now_ms() / 1000 + days * 86_400, timezone.utc)


def test_without_send_at_the_mail_goes_at_once():
    assert mail_from_body(orjson.dumps(GOOD), "m1").send_at == 0


@pytest.mark.parametrize("text, offset_ms", [
    ("Z", 0),
    ("z", 0),
    ("+00:00", 0),
    ("+02:00", -2 * 3_600_000),
    ("-05:30", 5 * 3_600_000 + 30 * 60_000),
])
def test_a_timestamp_with_a_zone_becomes_utc_milliseconds(text, offset_ms):
    moment = in_days(1).replace(microsecond=250_000, tzinfo=None)
    expected = ms(moment.replace(tzinfo=timezone.utc)) + offset_ms
    assert parsed(moment.isoformat(sep="T") + text) == expected


def test_milliseconds_are_taken_as_they_are():
    when = ms(in_days(2))
    assert parsed(when) == when


def test_a_time_in_the_past_is_accepted():
    assert parsed("2020-01-01T00:00:00Z") == 1_577_836_800_000
    assert parsed(1) == 1


@pytest.mark.parametrize("value, problem", [
    (in_days(1).replace(tzinfo=None).isoformat(), "no timezone"),
    (in_days(1).date().isoformat(), "no timezone"),
    ("tomorrow", "not a valid RFC 3339 timestamp"),
    ("2026-13-01T00:00:00Z", "not a valid RFC 3339 timestamp"),
    (1.5e12, "must be"),
    (True, "must be"),
    (None, "must be"),
    ([2026, 12, 1], "must be"),
])
def test_a_send_at_that_cannot_be_read_names_the_field(value, problem):
    with pytest.raises(InvalidMail) as caught:
        parsed(value)
    assert caught.value.field == "send_at" and problem in caught.value.problem


@pytest.mark.parametrize("value", [
    lambda: in_days(MAX_SCHEDULE_DAYS + 1).isoformat(),
    lambda: ms(in_days(MAX_SCHEDULE_DAYS + 1)),
])
def test_a_body_scheduled_too_far_ahead_is_refused(value):
    with pytest.raises(InvalidMail) as caught:
        parsed(value())
    assert caught.value.field == "send_at" and f"{MAX_SCHEDULE_DAYS} days" in caught.value.problem


def mail(send_at: int) -> Mail:
    return Mail("m1", "alice@example.com", ("bob@example.com",), "s", "c", 1, send_at=send_at, replayed_at=7)


def test_check_mail_takes_send_at_up_to_the_limit_and_keeps_it():
    now = 1_700_000_000_000
    limit = now + MAX_SCHEDULE_DAYS * DAY_MS
    for send_at in (0, 1, now - DAY_MS, now, limit):
        checked = check_mail(mail(send_at), now=now)
        assert (checked.send_at, checked.replayed_at) == (send_at, 7)


def test_check_mail_refuses_send_at_beyond_the_limit():
    now = 1_700_000_000_000
    with pytest.raises(InvalidMail) as caught:
        check_mail(mail(now + MAX_SCHEDULE_DAYS * DAY_MS + 1), now=now)
    assert caught.value.field == "send_at"


def test_check_mail_measures_the_limit_from_the_present_by_default():
    check_mail(mail(now_ms() + (MAX_SCHEDULE_DAYS - 1) * DAY_MS))
    with pytest.raises(InvalidMail):
        check_mail(mail(now_ms() + (MAX_SCHEDULE_DAYS + 1) * DAY_MS))
