"""Floods cost the flooder, not the gateway: made-up key ids cannot hold thousands of connections waiting, and
requests over a key's rate cost no broker write each."""
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import requests

from deploy.stack import LocalStack
from ingest.config import IngestConfig
from ingest.keys.ring import MAX_UNKNOWN_WAITING
from tests.e2e.conftest import wait_for
from tests.e2e.sessions import gateway, key_session, new_key

FLOOD = 400
# The stack's gateway runs as many processes as the environment says (each waits for its own unknown keys).
GATEWAY_PROCESSES = IngestConfig.from_env().workers
MAIL = {"sender": "a@example.com", "recipients": "b@example.com", "subject": "flood", "content": "hi"}


def _made_up_token() -> str:
    return f"mk_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


def test_made_up_key_ids_wait_in_bounded_numbers(stack: LocalStack, api: str):
    def attempt(_: int) -> int:
        return key_session(_made_up_token()).get(f"{api}/mails/", timeout=30).status_code

    with ThreadPoolExecutor(FLOOD) as pool:
        flood = pool.map(attempt, range(FLOOD))
        time.sleep(0.3)
        # A real key is answered while the flood waits.
        assert gateway.get(f"{api}/mails/", params={"per_page": 1}, timeout=10).status_code == 200
        statuses = list(flood)
    waited = statuses.count(401)
    assert set(statuses) <= {401, 503}, statuses
    assert waited <= MAX_UNKNOWN_WAITING * GATEWAY_PROCESSES + FLOOD // 4, f"{waited} of {FLOOD} waited"
    assert statuses.count(503) >= FLOOD // 2
    metrics = requests.get(f"{stack.config.api_url}/metrics", timeout=10).text
    assert float(re.search(r"^mercury_ingest_unknown_keys_turned_away_total (\S+)$", metrics, re.M)[1]) >= 1


def test_requests_over_rate_are_summarised_not_written_one_by_one(stack: LocalStack, api: str, clickhouse_client):
    key = new_key(api, scopes=["send"], rate_per_s=0.1, burst=1)
    limited = key_session(key["key"])
    statuses = [limited.post(f"{api}/mails/", json=MAIL, timeout=10).status_code for _ in range(40)]
    refused = statuses.count(429)
    assert refused >= 38, statuses

    def summaries() -> list[dict] | None:
        rows = clickhouse_client.execute(
            "SELECT blob FROM events WHERE event = 'rejected' AND visitParamExtractString(blob, 'key') = %(key)s",
            {"key": key["id"]})
        details = [orjson.loads(blob) for blob, in rows]
        return details if sum(d.get("count", 1) for d in details) >= refused else None

    details = wait_for(summaries, timeout=40, what="the over-rate summaries in the history")
    # One summary per gateway process that refused any (within one summary period), never one per request.
    assert 1 <= len(details) <= GATEWAY_PROCESSES * 2, len(details)
    assert sum(d["count"] for d in details) == refused
    assert all("over its request rate" in d["reason"] and d["tenant"] == key["tenant"] for d in details)
    metrics = requests.get(f"{stack.config.api_url}/metrics", timeout=10).text
    counted = re.search(rf'^mercury_ingest_requests_over_rate_total{{tenant="{key["tenant"]}"}} (\S+)$', metrics, re.M)
    assert counted and float(counted[1]) >= refused
