"""The sink's share of the rollups: a batch's late rows touch their minutes, a batch that keeps up touches none,
and the settler survives a ClickHouse it cannot reach."""
import pytest
from clickhouse_driver import Client
from pipeline import Records

from analytics.rollups.settle import Settler
from analytics.rollups.touches import TOUCH_AFTER_MS, with_touches
from analytics.rows import event_row, mail_row

NOW = 1_750_000_000_000


def test_only_rows_older_than_the_margin_touch_their_minute(records: Records) -> None:
    fresh = records.mail(NOW - 1000)
    late = records.mail(NOW - TOUCH_AFTER_MS - 1)
    later = records.event(fresh["id"], "sent", NOW - 3 * 60_000 - 5, "alpha", "accepted")
    rows = {"mails": [mail_row(fresh, 0, 0), mail_row(late, 0, 1)], "events": [event_row(later, 0, 0)]}

    touched = with_touches(rows, NOW)

    assert {table: touched[table] for table in rows} == rows
    assert touched["settled_minutes"] == sorted(
        [((NOW - TOUCH_AFTER_MS - 1) // 60_000 * 60,), ((NOW - 3 * 60_000 - 5) // 60_000 * 60,)])
    keeping_up = {"mails": [mail_row(fresh, 0, 0)], "events": []}
    assert with_touches(keeping_up, NOW) is keeping_up


def test_the_settler_settles_once_per_period_and_survives_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    settler = Settler(Client("127.0.0.1", port=1, connect_timeout=1), every_s=10, clock=lambda: clock[0])
    settler.tick()
    assert caplog.text.count("settle_failed") == 1
    clock[0] = 9
    settler.tick()
    assert caplog.text.count("settle_failed") == 1, "tried again before the period passed"
    clock[0] = 10
    settler.tick()
    assert caplog.text.count("settle_failed") == 2
