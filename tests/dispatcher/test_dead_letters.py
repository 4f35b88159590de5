"""Listing and replaying dead letters against the real broker: letters in, requests and events out.

The broker is shared by the whole session, so every test tells its letters apart by fresh mail ids and a
time window of its own, far from the present, that no other letter falls into.
"""
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from deploy.processes import free_port
from deploy.topics import create_topics
from dispatcher.dead_letters import Letter, LetterReader, Selection, choose, replay
from schemas import codec, topics
from schemas.events import iso_utc, now_ms

ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def broker(bootstrap: str) -> str:
    create_topics(bootstrap, 3, {})
    return bootstrap


@pytest.fixture
def window() -> int:
    """The start of a day in 2001-2017 that this test has to itself."""
    return random.randrange(1_000_000_000_000 // DAY_MS, 1_500_000_000_000 // DAY_MS) * DAY_MS


def new_id(label: str) -> str:
    return f"dl-{label}-{uuid.uuid4().hex}"


def mail(mail_id: str, **fields: object) -> dict:
    """A MailRequest as the newest schema decodes it: the full-message fields at their defaults."""
    return {"id": mail_id, "sender": "alice@example.com", "recipients": ["bob@example.com", "carol@example.com"],
            "subject": f"subject of {mail_id}", "content": "hello\nthere", "created_at": 1_700_000_000_000,
            "origin": "kafka", "send_at": 0, "replayed_at": 0, "html": "", "cc": [], "bcc": [], "reply_to": "",
            "headers": {}, "attachments": [], "tags": [], "metadata": {}, "tenant": "default", **fields}


def mail_bytes(mail_id: str, **fields: object) -> bytes:
    return codec.encode("mercury.MailRequest", mail(mail_id, **fields))


def letter(mail_id: str, outcome: str, dead_at: int, payload: bytes, reason: str = "") -> dict:
    return {"mail_id": mail_id, "reason": reason or f"{outcome} for {mail_id}", "outcome": outcome,
            "source_topic": topics.REQUESTS, "source_partition": 2, "source_offset": 4711,
            "payload": payload, "dead_at": dead_at}


def publish(bootstrap: str, letters: list[dict]) -> None:
    """All in one flush, so each partition gets its letters as one batch of several records."""
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 50})
    for record in letters:
        producer.produce(topics.DEAD, codec.encode("mercury.DeadLetter", record), key=record["mail_id"],
                         on_delivery=lambda err, _msg: err and errors.append(err.str()))
    assert producer.flush(30) == 0 and not errors, errors


def read_topic(bootstrap: str, topic: str, keys: set[str]) -> list[dict]:
    """Every record with one of these keys, read from the beginning to each partition's end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    found, remaining = [], set(partitions)
    try:
        while remaining:
            message = consumer.poll(30)
            assert message is not None, f"{topic} stalled"
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                remaining.discard(message.partition())
            elif message.key() and message.key().decode() in keys:
                found.append(codec.decode(message.value())[1])
    finally:
        consumer.close()
    return found


def selected_ids(letters: list[Letter], selection: Selection) -> list[str]:
    return sorted(x.mail_id for x in letters if selection.matches(x))


def run_cli(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap}
    return subprocess.run([sys.executable, "-m", "deploy.cli", "dead", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_list_selects_by_reason_time_range_and_id(broker, window):
    a, b, c, d = (new_id(x) for x in "abcd")
    publish(broker, [
        letter(a, "permanent", window, mail_bytes(a)),
        letter(b, "exhausted", window + 1000, mail_bytes(b)),
        letter(c, "malformed", window + 2000, b"\x00garbage"),
        letter(d, "exhausted", window + 3000, mail_bytes(d)),
    ])
    letters = list(LetterReader(broker))
    ours = sorted([a, b, c, d])
    assert selected_ids(letters, Selection(since=window, until=window + DAY_MS)) == ours
    assert selected_ids(letters, Selection(reasons=frozenset({"exhausted"}), since=window,
                                           until=window + DAY_MS)) == sorted([b, d])
    assert selected_ids(letters, Selection(since=window + 1000, until=window + 3000)) == sorted([b, c])
    assert selected_ids(letters, Selection(ids=frozenset({a, c}))) == sorted([a, c])
    assert selected_ids(letters, Selection(reasons=frozenset({"permanent", "malformed"}),
                                           ids=frozenset(ours))) == sorted([a, c])
    (first,) = [x for x in letters if x.mail_id == a]
    assert (first.reason, first.source, first.dead_at) == (f"permanent for {a}", f"{topics.REQUESTS}:2:4711", window)


def test_letters_written_as_one_batch_are_all_read_to_the_end(broker, window):
    """Tansu reports the end of a partition as its last batch's base offset + 1: a reader that trusted it
    would stop inside this batch."""
    ids = [new_id(f"batch{n}") for n in range(60)]
    publish(broker, [letter(mail_id, "exhausted", window + n, mail_bytes(mail_id)) for n, mail_id in enumerate(ids)])
    reader = LetterReader(broker)
    letters = list(reader)
    assert selected_ids(letters, Selection(ids=frozenset(ids))) == sorted(ids)
    assert reader.stats.partitions_done == reader.stats.partitions > 0


def test_replay_puts_back_the_latest_letter_of_each_mail_and_records_it(broker, window):
    twice, once, garbage, retry, cut = (new_id(x) for x in ("twice", "once", "garbage", "retry", "cut"))
    retry_record = codec.encode("mercury.RetryRecord", {"mail": mail(retry), "level": 1, "due_at": 1, "excluded": []})
    publish(broker, [
        letter(twice, "exhausted", window, mail_bytes(twice, subject="first state")),
        letter(twice, "permanent", window + 1000, mail_bytes(twice, subject="latest state"), reason="bad recipient"),
        letter(once, "no_provider", window + 2000, mail_bytes(once, origin="http", send_at=1_700_000_100_000)),
        letter(garbage, "malformed", window + 3000, b"\x00\x00\x00\x00\x07not avro"),
        letter(retry, "malformed", window + 4000, retry_record),
        letter(cut, "malformed", window + 5000, mail_bytes(cut)[:-3]),
    ])
    ids = {twice, once, garbage, retry, cut}
    choice = choose(LetterReader(broker), Selection(ids=frozenset(ids)))
    assert choice.superseded == 1
    before = now_ms()
    report = replay(broker, choice.letters)

    assert report.ok
    assert sorted(x.mail_id for x in report.replayed) == sorted([twice, once])
    assert sorted(x.mail_id for x, _ in report.not_replayable) == sorted([garbage, retry, cut])
    requests = {record["id"]: record for record in read_topic(broker, topics.REQUESTS, ids)}
    assert requests.keys() == {twice, once}
    assert all(record["replayed_at"] >= before for record in requests.values())
    assert requests[twice] == mail(twice, subject="latest state", replayed_at=requests[twice]["replayed_at"])
    assert requests[once] == mail(once, origin="http", send_at=1_700_000_100_000,
                                  replayed_at=requests[once]["replayed_at"])

    events = read_topic(broker, topics.EVENTS, ids)
    assert sorted(e["mail"] for e in events) == sorted([twice, once])
    assert {e["event"] for e in events} == {"replayed"} and {e["created_by"] for e in events} == {"dead-letters"}
    (event,) = [e for e in events if e["mail"] == twice]
    (latest,) = [x for x in choice.letters if x.mail_id == twice]
    assert event["outcome"] == "permanent" and event["created_at"] == requests[twice]["replayed_at"]
    assert orjson.loads(event["blob"]) == {
        "reason": "bad recipient", "dead_at": window + 1000, "replayed_at": requests[twice]["replayed_at"],
        "topic": topics.DEAD, "partition": latest.partition, "offset": latest.offset,
        "source_topic": topics.REQUESTS, "source_partition": 2, "source_offset": 4711,
    }


def test_a_replay_is_stamped_after_a_letter_from_a_clock_running_ahead(broker):
    mail_id = new_id("ahead")
    ahead = now_ms() + 3_600_000
    publish(broker, [letter(mail_id, "exhausted", ahead, mail_bytes(mail_id))])
    report = replay(broker, choose(LetterReader(broker), Selection(ids=frozenset({mail_id}))).letters)
    assert [x.mail_id for x in report.replayed] == [mail_id]
    (record,) = read_topic(broker, topics.REQUESTS, {mail_id})
    assert record["replayed_at"] == ahead + 1


def test_replay_reports_every_write_the_broker_did_not_acknowledge():
    letters = [Letter(mail_id, "gave up", "exhausted", topics.REQUESTS, 0, n, mail_bytes(mail_id), 1, 0, n)
               for n, mail_id in enumerate([new_id("lost1"), new_id("lost2")])]
    report = replay(f"127.0.0.1:{free_port()}", letters, timeout_s=1)
    assert not report.ok and not report.replayed
    assert sorted(x.mail_id for x, _ in report.failed) == sorted(x.mail_id for x in letters)


def test_the_command_lists_and_replays(broker, window):
    good, bad = new_id("cli-good"), new_id("cli-bad")
    publish(broker, [
        letter(good, "exhausted", window + 1500, mail_bytes(good), reason="mailgun: 503\nthen sendgrid: 503"),
        letter(bad, "malformed", window + 2500, b"not a mail"),
    ])

    refused = run_cli(broker, "replay")
    assert refused.returncode == 2 and "--all" in refused.stderr
    assert run_cli(broker, "replay", "--all", "--id", good).returncode == 2

    listed = run_cli(broker, "list", "--since", iso_utc(window), "--until", str(window + DAY_MS))
    assert listed.returncode == 0, listed.stderr
    *lines, total = listed.stdout.splitlines()
    assert total == "total: 2" and sorted(lines) == [
        f"{iso_utc(window + 1500)}  {good}  exhausted  {topics.REQUESTS}:2:4711  mailgun: 503 then sendgrid: 503",
        f"{iso_utc(window + 2500)}  {bad}  malformed  {topics.REQUESTS}:2:4711  malformed for {bad}",
    ]
    as_json = run_cli(broker, "list", "--id", bad, "--reason", "malformed", "--json")
    assert as_json.returncode == 0 and "total: 1" in as_json.stderr
    (line,) = as_json.stdout.splitlines()
    assert orjson.loads(line) | {"partition": 0, "offset": 0} == {
        "dead_at": window + 2500, "dead_at_iso": iso_utc(window + 2500), "mail_id": bad, "outcome": "malformed",
        "reason": f"malformed for {bad}", "source_topic": topics.REQUESTS, "source_partition": 2,
        "source_offset": 4711, "partition": 0, "offset": 0, "replayable": False,
    }

    replayed = run_cli(broker, "replay", "--id", good, "--id", bad)
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed  {good}  exhausted" in replayed.stdout
    assert f"not replayable  {bad}  malformed" in replayed.stdout
    assert replayed.stdout.splitlines()[-1] == ("replayed 1, not replayable 1, failed 0, older letters skipped 0, "
                                                "already replayed 0")
    assert [record["id"] for record in read_topic(broker, topics.REQUESTS, {good, bad})] == [good]

    again = run_cli(broker, "replay", "--id", good)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == ("replayed 0, not replayable 0, failed 0, older letters skipped 1, "
                                             "already replayed 1"), "its receipt stands after the letter"
    assert [record["id"] for record in read_topic(broker, topics.REQUESTS, {good})] == [good]
    relisted = run_cli(broker, "list", "--id", good)
    assert relisted.stdout.splitlines()[-1] == "total: 1", "a receipt is not listed as a letter"


def test_a_mail_dead_lettered_again_after_its_replay_can_be_replayed_again(broker):
    mail_id = new_id("twice")
    publish(broker, [letter(mail_id, "exhausted", now_ms() - 2000, mail_bytes(mail_id))])
    first = replay(broker, choose(LetterReader(broker), Selection(ids=frozenset({mail_id}))).letters)
    assert [x.mail_id for x in first.replayed] == [mail_id]
    publish(broker, [letter(mail_id, "exhausted", now_ms() + 1000, mail_bytes(mail_id))])
    choice = choose(LetterReader(broker), Selection(ids=frozenset({mail_id})))
    assert [x.mail_id for x in choice.letters] == [mail_id] and choice.already_replayed == 0


def test_the_command_fails_when_the_broker_does_not_answer():
    result = run_cli(f"127.0.0.1:{free_port()}", "list", "--timeout", "1")
    assert result.returncode == 1 and result.stderr.startswith("error: no answer from the broker")
