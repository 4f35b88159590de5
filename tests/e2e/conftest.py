"""Helpers for the tests that run against the whole local stack (the `stack` fixture is in tests/conftest.py)."""
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
from confluent_kafka import Consumer
from sandbox_client import Sandbox

from analytics.connection import connect
from deploy.stack import LocalStack
from schemas import codec
from tests.e2e.sessions import gateway


def wait_for(check: Callable[[], object], timeout: float = 30.0, every: float = 0.2, what: str = "condition"):
    """Poll until `check` returns something truthy; fail the test with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def api(stack: LocalStack) -> str:
    return f"{stack.config.api_url}/api/v1.0"


@pytest.fixture
def sandbox(stack: LocalStack) -> Iterator[Sandbox]:
    """The stack's sandbox with no faults; mailboxes are kept, tests tell their mails apart by subject."""
    c = stack.config
    box = Sandbox({"mailgun": c.mailgun_port, "sendgrid": c.sendgrid_port}, c.sandbox_control_port)
    box.clear_faults()
    yield box
    box.clear_faults()


@pytest.fixture
def clickhouse_client(stack: LocalStack):
    return connect({"CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_PORT": str(stack.config.clickhouse_port)})


def unique_subject(label: str) -> str:
    return f"{label} {uuid.uuid4().hex[:12]}"


def post_mail(api: str, subject: str, recipients: object = "bob@example.com", session: requests.Session = gateway,
              **extra: object) -> str:
    body = {"sender": "alice@example.com", "recipients": recipients, "subject": subject, "content": "hello", **extra}
    response = session.post(f"{api}/mails/", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def events_of(api: str, mail_id: str, session: requests.Session = gateway) -> list[dict]:
    response = session.get(f"{api}/mails/{mail_id}/events/", timeout=10)
    return response.json()["events"] if response.status_code == 200 else []


def wait_for_event(api: str, mail_id: str, event: str, timeout: float = 30.0,
                   session: requests.Session = gateway) -> list[dict]:
    return wait_for(lambda: (evs := events_of(api, mail_id, session)) and any(e["event"] == event for e in evs) and evs,
                    timeout, what=f"event {event!r} of mail {mail_id}")


def records_on(bootstrap: str, topic: str, wanted: Callable[[bytes, dict], bool], count: int,
               timeout: float = 30.0) -> list[dict]:
    """Read `topic` from the beginning until `count` records for which wanted(key, record) holds were seen."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                if message.error() is None:
                    _, record = codec.decode(message.value())
                    if wanted(message.key(), record):
                        found.append(record)
    finally:
        consumer.close()
    return found


def dead_letters(bootstrap: str, wanted: Callable[[dict], bool], count: int, timeout: float = 30.0) -> list[dict]:
    """Read mail.dead from the beginning until `count` letters matching `wanted` were seen."""
    return records_on(bootstrap, "mail.dead", lambda _key, letter: wanted(letter), count, timeout)
