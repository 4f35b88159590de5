"""A 503 after the broker may have written the mail (or a key) tells the truth: the client learns that the mail may be
queued, under which id, and that a retry with an Idempotency-Key is the safe one. The broker is frozen
(SIGSTOP) while the record is on its way: whether it is written depends on what the broker read before."""
import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from deploy.broker import broker_process
from deploy.processes import ManagedProcess, free_port
from deploy.topics import create_topics
from ingest.app import create_app
from ingest.config import IngestConfig
from ingest.keys.admin import create_key
from ingest.keys.api_key import Scope

MAIL = {"sender": "a@example.com", "recipients": "b@example.com", "subject": "frozen broker", "content": "hi"}


@pytest.fixture
def broker(tmp_path) -> Iterator[tuple[ManagedProcess, str]]:
    port = free_port()
    process = broker_process(port, tmp_path).start()
    bootstrap = f"127.0.0.1:{port}"
    create_topics(bootstrap, 1, {})
    yield process, bootstrap
    os.killpg(process.proc.pid, signal.SIGCONT)
    process.stop()


def test_a_mail_the_broker_may_have_written_is_not_called_unaccepted(broker):
    process, bootstrap = broker
    _, token = asyncio.run(create_key(bootstrap, scopes=(Scope.SEND, Scope.OPERATOR)))
    config = IngestConfig("127.0.0.1", 0, bootstrap, 900_000, delivery_timeout_ms=1000, workers=1)
    with TestClient(create_app(config)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        assert client.post("/api/v1.0/mails/", json=MAIL).status_code == 202
        os.killpg(process.proc.pid, signal.SIGSTOP)
        try:
            answer = client.post("/api/v1.0/mails/", json=MAIL)
            batch = client.post("/api/v1.0/mails/batch", json={"mails": [MAIL, MAIL]})
            minted = client.post("/api/v1.0/keys/", json={"scopes": ["read"]})
        finally:
            os.killpg(process.proc.pid, signal.SIGCONT)
    body = answer.json()
    assert answer.status_code == 503 and answer.headers["Retry-After"], answer.text
    assert body["accepted"] == "unknown" and "may or may not have been accepted" in body["error"]
    assert "Idempotency-Key" in body["error"] and "nothing was accepted" not in body["error"] and body["mail_id"]
    # A batch says so of each mail, under each one's own id.
    assert batch.status_code == 503 and batch.headers["Retry-After"], batch.text
    items = batch.json()["mails"]
    assert [(item["code"], item["accepted"], item["error"]) for item in items] == [(503, "unknown", body["error"])] * 2
    assert len({item["mail_id"] for item in items}) == 2
    # So do the writes of keys (and of providers and configurations, through the same topic writer).
    assert minted.status_code == 503 and "may or may not have been stored" in minted.json()["error"], minted.text
