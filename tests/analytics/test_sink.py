"""The sink as a real process between the real broker and the real ClickHouse.

Each test's sink joins a consumer group of its own, so it reads the topics from the beginning; the
assertions therefore look only at the test's own ids, time window and providers.
"""
import logging
import signal
import time
from pathlib import Path

from clickhouse_driver import Client
from pipeline import Publisher, Records, SinkRunner, all_stored, committed, now_ms, stored, wait_for

from analytics import questions
from analytics.connection import connect
from analytics.migrate import migrate
from analytics.store import MailStore
from deploy.clickhouse import clickhouse_process
from deploy.processes import free_port
from schemas import codec, topics
from schemas.logs import find_events

log = logging.getLogger(__name__)

# A time window of this module's own (year 2100), so time-bounded questions see only its records.
WINDOW = 4_102_444_800_000


def story(records: Records, provider: str, mails: int = 20) -> tuple[list[dict], list[dict]]:
    """Mails accepted in WINDOW, each dispatched to `provider`; even ones sent, odd ones failing once."""
    mail_records, events = [], []
    for i in range(mails):
        at = WINDOW + i * 1000
        mail = records.mail(at)
        mail_records.append(mail)
        events.append(records.event(mail["id"], "accepted", at))
        events.append(records.event(mail["id"], "dispatched", at + 100, provider))
        if i % 2:
            events.append(records.event(mail["id"], "attempt_failed", at + 150, provider, "transient",
                                        cause="rate_limit", status=429))
        else:
            events.append(records.event(mail["id"], "sent", at + 300, provider, "accepted",
                                        message_id=f"<{i}>", latency_ms=200))
    return mail_records, events


def committed_up_to(sinks: SinkRunner, ends: dict[tuple[str, int], int]) -> bool:
    offsets = committed(sinks.bootstrap, sinks.group)
    return all(offsets.get(key, -1) >= end for key, end in ends.items())


def publish_and_settle(publisher: Publisher, records: Records, client: Client, timeout: float = 30) -> None:
    """Publish sentinels after what was published and wait until the sink stored them all."""
    mail_ids, event_ids = publisher.sentinels(records)
    publisher.flush()
    wait_for(lambda: all_stored(client, mail_ids, event_ids), timeout, "the sink stored every sentinel")


def test_sink_stores_each_record_once_skips_poison_and_stops_cleanly(
    sinks: SinkRunner, publisher: Publisher, records: Records, client: Client, ch_env: dict[str, str],
) -> None:
    provider = f"prov-{records.tag}"
    mails, events = story(records, provider)
    sink = sinks.start(ch_env)
    publisher.mails(mails)
    publisher.events(events[: len(events) // 2])
    # Poison between good records: garbage, an empty value, and a record of the wrong schema.
    publisher.raw(topics.EVENTS, b"not avro at all", key=mails[0]["id"])
    publisher.raw(topics.EVENTS, None, key=mails[0]["id"])
    publisher.raw(topics.REQUESTS, codec.encode("mercury.MailEvent", events[0]), key=mails[0]["id"])
    publisher.events(events[len(events) // 2:])
    publish_and_settle(publisher, records, client)

    expected_stats = {
        "provider": provider, "attempts": 20, "sent": 10, "failed": 10, "success_rate": 0.5, "failure_rate": 0.5,
        "latency_ms": {"count": 10, "max_ms": 200, "avg_ms": 200.0, "p50_ms": 200.0, "p95_ms": 200.0, "p99_ms": 200.0},
    }

    def answers() -> tuple:
        by_provider = {row["provider"]: row for row in questions.provider_stats(client, since_ms=WINDOW)}
        causes = {row["provider"]: row for row in questions.failure_causes(client, since_ms=WINDOW)}
        return (
            stored(client, "mails", {m["id"] for m in mails}),
            stored(client, "events", {e["id"] for e in events}),
            by_provider[provider],
            causes[provider]["rate_limit"],
            questions.delivery_time_stats(client, since_ms=WINDOW),
            [len(MailStore(client).mail_events(m["id"])) for m in mails],
        )

    first = answers()
    assert first[:4] == (20, len(events), expected_stats, 10)
    assert first[4]["count"] == 10 and first[4]["max_ms"] == 300

    # Re-delivery: the same records again. No answer may change.
    publisher.mails(mails)
    publisher.events(events)
    publish_and_settle(publisher, records, client)
    assert answers() == first

    log = sink.log_path.read_text()
    skipped = find_events(log, "record_skipped")
    assert len(skipped) >= 3
    assert all({"topic", "partition", "offset", "reason"} <= fields.keys() for fields in skipped)
    wait_for(lambda: committed_up_to(sinks, publisher.ends), 15, "offsets committed up to the last record published")

    sink.signal(signal.SIGTERM)
    assert sink.proc.wait(timeout=10) == 0
    assert find_events(sink.log_path.read_text(), "sink_stopped")


def test_sink_started_while_clickhouse_is_down_commits_nothing_then_inserts_everything(
    sinks: SinkRunner, publisher: Publisher, records: Records, tmp_path: Path,
) -> None:
    tcp_port = free_port()
    env = {"CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_PORT": str(tcp_port), "CLICKHOUSE_DATABASE": "late"}
    mails = [records.mail(now_ms()) for _ in range(50)]
    events = [records.event(m["id"], "accepted", m["created_at"]) for m in mails]
    publisher.mails(mails)
    publisher.events(events)
    mail_ids, event_ids = publisher.sentinels(records)
    publisher.flush()

    # Stopped while it cannot insert, a sink abandons its batch and commits nothing.
    abandoning = sinks.start(env)
    wait_for(lambda: find_events(abandoning.log_path.read_text(), "insert_failed"), 20, "an insert failed")
    abandoning.signal(signal.SIGTERM)
    assert abandoning.proc.wait(timeout=10) == 0
    assert find_events(abandoning.log_path.read_text(), "batch_abandoned")
    assert all(offset < 0 for offset in committed(sinks.bootstrap, sinks.group).values())

    sink = sinks.start(env)
    wait_for(lambda: len(find_events(sink.log_path.read_text(), "insert_failed")) >= 3, 20, "inserts retried")
    assert all(offset < 0 for offset in committed(sinks.bootstrap, sinks.group).values())

    server = clickhouse_process(tcp_port, free_port(), tmp_path / "clickhouse", tmp_path / "logs").start()
    try:
        client = connect(env)
        migrate(client)
        wait_for(lambda: all_stored(client, mail_ids | {m["id"] for m in mails}, event_ids | {e["id"] for e in events}),
                 30, "the held batch inserted once ClickHouse is back")
        assert find_events(sink.log_path.read_text(), "insert_recovered")
        wait_for(lambda: committed_up_to(sinks, publisher.ends), 15, "offsets committed after the insert")
        sink.stop()
        client.disconnect()
    finally:
        server.stop()


def test_a_killed_sink_loses_nothing_and_counts_nothing_twice_after_restart(
    sinks: SinkRunner, publisher: Publisher, records: Records, client: Client, ch_env: dict[str, str],
) -> None:
    first = sinks.start(ch_env, MERCURY_SINK_BATCH_SIZE="200")
    mails = [records.mail(now_ms()) for _ in range(3000)]
    events = [records.event(m["id"], "accepted", m["created_at"]) for m in mails for _ in range(3)]
    publisher.mails(mails)
    publisher.events(events)
    publisher.flush()
    mail_ids, event_ids = {m["id"] for m in mails}, {e["id"] for e in events}
    # Kill it mid-stream: some batches inserted (maybe not yet committed), others not yet read.
    wait_for(lambda: stored(client, "events", event_ids) > 0, 30, "the first batches inserted")
    first.signal(signal.SIGKILL)
    first.proc.wait(timeout=5)
    partial = stored(client, "events", event_ids)

    started = time.monotonic()
    sinks.start(ch_env)
    rejoin_s = time.monotonic() - started
    publish_and_settle(publisher, records, client, timeout=60)
    assert (stored(client, "mails", mail_ids), stored(client, "events", event_ids)) == (len(mails), len(events))
    ((rows,),) = client.execute(
        "SELECT count() FROM events FINAL WHERE mail IN %(mails)s", {"mails": tuple(mail_ids)},
    )
    assert rows == len(events)
    log.info("killed after %d of %d events stored; the restarted sink rejoined in %.1fs",
             partial, len(events), rejoin_s)
