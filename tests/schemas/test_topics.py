"""Every topic is registered once, and each one is written by some component and read by another."""
from pathlib import Path

import pytest

from schemas import topics

ROOT = Path(__file__).resolve().parents[2]


def source(*packages: str) -> str:
    return "\n".join(p.read_text() for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def test_the_ladder_has_one_topic_per_delay(monkeypatch):
    monkeypatch.setenv("MERCURY_RETRY_DELAYS", "1, 2.5,10")
    assert topics.retry_delays() == [1.0, 2.5, 10.0]
    assert topics.retry_topics() == ["mail.retry.0", "mail.retry.1", "mail.retry.2"]
    assert len(set(topics.all_topics())) == len(topics.all_topics()) == 12 + len(topics.SCHEDULE_DELAYS)


@pytest.mark.parametrize("raw", ["", "0,5", "-1", "five"])
def test_a_broken_ladder_stops_at_start(monkeypatch, raw):
    monkeypatch.setenv("MERCURY_RETRY_DELAYS", raw)
    with pytest.raises(ValueError):
        topics.retry_delays()


# Every fixed topic (and topic prefix), with the packages that write it and those that read it.
FIXED = [
    ("REQUESTS", ("ingest",), ("dispatcher", "analytics")),
    ("EVENTS", ("ingest", "dispatcher"), ("analytics",)),
    ("DEAD", ("dispatcher",), ("dispatcher",)),
    ("HEALTH", ("dispatcher",), ("dispatcher", "analytics")),
    ("LEDGER", ("dispatcher",), ("dispatcher",)),
    ("FEEDBACK", ("ingest",), ("analytics",)),
    ("API_KEYS", ("ingest",), ("ingest",)),
    ("PROVIDERS", ("ingest",), ("dispatcher",)),
    ("CONFIGURATIONS", ("ingest",), ("dispatcher",)),
    ("RETRY_PREFIX", ("dispatcher",), ("dispatcher",)),
    ("SCHEDULE_PREFIX", ("dispatcher",), ("dispatcher",)),
]


def test_every_fixed_topic_is_checked():
    fixed = {name for name, value in vars(topics).items()
             if name.isupper() and isinstance(value, str) and value.startswith("mail.")}
    assert fixed == {name for name, _, _ in FIXED}


@pytest.mark.parametrize("name, producers, consumers", FIXED)
def test_topic_names_are_only_spelled_in_schemas(name, producers, consumers):
    """Components refer to topics through schemas.topics, never by a literal name of their own."""
    literal = f'"{getattr(topics, name)}"'
    assert literal not in source("ingest", "dispatcher", "analytics", "providers", "deploy")
    for package in (*producers, *consumers):
        assert f"topics.{name}" in source(package), f"{package} does not use topics.{name}"
