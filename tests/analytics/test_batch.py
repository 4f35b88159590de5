"""The batch: closes by size or by age, commits one past the last record, forgets revoked partitions."""
import pytest

from analytics.batch import Batch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_closes_by_size() -> None:
    batch = Batch(max_size=3, max_seconds=60, clock=Clock())
    for offset in range(2):
        batch.add("mail.events", 0, offset, "events", (offset,))
    assert not batch.ready() and batch.room() == 1
    batch.add("mail.events", 0, 2, "events", (2,))
    assert batch.ready() and batch.room() == 0


def test_closes_by_age_counted_from_its_first_record() -> None:
    clock = Clock()
    batch = Batch(max_size=100, max_seconds=0.5, clock=clock)
    clock.now += 10
    assert not batch.ready() and batch.seconds_left() == 0.5
    batch.add("mail.events", 0, 0, "events", (0,))
    clock.now += 0.3
    assert not batch.ready() and batch.seconds_left() == pytest.approx(0.2)
    clock.now += 0.2
    assert batch.ready()


def test_commits_one_past_the_last_record_of_each_partition_including_skipped_ones() -> None:
    batch = Batch(max_size=100, max_seconds=1, clock=Clock())
    batch.add("mail.events", 0, 7, "events", ("a",))
    batch.add("mail.events", 0, 8)
    batch.add("mail.events", 1, 3, "events", ("b",))
    batch.add("mail.requests", 0, 0, "mails", ("m",))
    assert batch.offsets() == {("mail.events", 0): 9, ("mail.events", 1): 4, ("mail.requests", 0): 1}
    assert batch.rows() == {"events": [("a",), ("b",)], "mails": [("m",)]}
    assert len(batch) == 4


def test_revoked_partitions_are_forgotten() -> None:
    batch = Batch(max_size=100, max_seconds=1, clock=Clock())
    batch.add("mail.events", 0, 1, "events", ("a",))
    batch.add("mail.events", 0, 2)
    batch.add("mail.events", 1, 5, "events", ("b",))
    assert batch.drop([("mail.events", 0), ("mail.requests", 3)]) == 2
    assert batch.offsets() == {("mail.events", 1): 6}
    assert batch.rows() == {"events": [("b",)]}
    assert len(batch) == 1


def test_rejects_limits_that_never_close() -> None:
    with pytest.raises(ValueError):
        Batch(max_size=0, max_seconds=1)
