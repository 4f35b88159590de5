"""The full mail across schema versions: records every older MailRequest and RetryRecord version wrote decode
into the newest with the defaults, and every record that carries a mail (retry, schedule hop, dead letter,
replay, the analytics row) keeps all of its fields."""
import io

import fastavro
import pytest

from analytics.rows import mail_row
from dispatcher.dead_letters import Letter, replayed_record
from dispatcher.jobs import Job, Source, job_from_record
from schemas import codec, registry, topics
from schemas.model import Attachment, Mail

SEED = {"id": "m1", "sender": "a@example.com", "recipients": ["b@example.com"], "subject": "s", "content": "c",
        "created_at": 1_700_000_000_000, "origin": "http"}
V3_DEFAULTS = {"html": "", "cc": [], "bcc": [], "reply_to": "", "headers": {}, "attachments": [], "tags": [],
               "metadata": {}}
NEW_DEFAULTS = {**V3_DEFAULTS, "tenant": "default"}
V3_FIELDS = {**SEED, "send_at": 5, "replayed_at": 6, "html": "<p>h</p>", "cc": ["c@example.com"], "bcc": [],
             "reply_to": "", "headers": {"X-A": "b"}, "attachments": [], "tags": ["t"], "metadata": {"k": "v"}}
FULL = Mail(
    id="acme:m-full", sender="a@example.com", recipients=("b@example.com",), subject="Spring", content="text",
    created_at=1_700_000_000_000, origin="http", html="<p>html</p>", cc=("c@example.com",),
    bcc=("d@example.com",), reply_to="r@example.com", headers={"X-Campaign": "spring"},
    attachments=(Attachment("a.pdf", "application/pdf", b"%PDF\x00\xff"),), tags=("t1", "t2"),
    metadata={"customer": "42"}, tenant="acme",
)


def written_with(schema_id: int, record: dict) -> bytes:
    """A record exactly as a producer holding that schema version writes it."""
    schema = registry.schemas()[schema_id]
    buffer = io.BytesIO(b"\x00" + schema_id.to_bytes(4, "big"))
    buffer.seek(5)
    fastavro.schemaless_writer(buffer, schema.parsed, record)
    return buffer.getvalue()


def test_the_new_versions_take_the_next_free_ids_and_the_old_ones_stay():
    assert registry.by_name("mercury.MailRequest").id == 12 and registry.by_name("mercury.RetryRecord").id == 13
    assert [s.id for s in registry.subject_versions("mail.requests-value")] == [1, 7, 10, 12]
    assert [s.id for s in registry.subject_versions("mail.retry.0-value")] == [2, 8, 11, 13]


@pytest.mark.parametrize("schema_id, record, defaults", [
    (1, SEED, {"send_at": 0, "replayed_at": 0, **NEW_DEFAULTS}),
    (7, {**SEED, "send_at": 5, "replayed_at": 6}, NEW_DEFAULTS),
    (10, V3_FIELDS, {"tenant": "default"}),
])
def test_an_older_mail_request_decodes_with_the_new_defaults(schema_id, record, defaults):
    name, decoded = codec.decode(written_with(schema_id, record))
    assert (name, decoded) == ("mercury.MailRequest", {**record, **defaults})
    assert Mail.from_record(decoded).tenant == "default"


@pytest.mark.parametrize("schema_id, mail", [
    (2, SEED), (8, {**SEED, "send_at": 0, "replayed_at": 0}), (11, {**SEED, "send_at": 0, "replayed_at": 0,
                                                                   **V3_DEFAULTS}),
])
def test_an_older_retry_record_decodes_with_the_new_defaults(schema_id, mail):
    retry = {"mail": mail, "level": 1, "due_at": 5, "excluded": ["mailgun"], "last_error": "x"}
    name, decoded = codec.decode(written_with(schema_id, retry))
    assert name == "mercury.RetryRecord" and decoded["mail"] == {**SEED, "send_at": 0, "replayed_at": 0,
                                                                 **NEW_DEFAULTS}
    job = job_from_record(name, decoded, Source(topics.retry_topic(1), 0, 0, 0))
    assert (job.mail.html, job.mail.tenant) == ("", "default") and job.excluded == {"mailgun"}


def test_the_newest_versions_carry_the_tenant():
    _, record = codec.decode(codec.encode("mercury.MailRequest", FULL.to_record()))
    assert record["tenant"] == "acme" and codec.decode(written_with(12, record))[1] == record
    retry = Job(FULL, Source(topics.REQUESTS, 0, 1, 0)).retry_record(0, 1, "x")
    assert retry[1:5] == (13).to_bytes(4, "big") and codec.decode(retry)[1]["mail"]["tenant"] == "acme"


def test_a_full_mail_survives_its_request_record():
    name, record = codec.decode(codec.encode("mercury.MailRequest", FULL.to_record()))
    assert Mail.from_record(record) == FULL


def test_a_full_mail_survives_the_retry_ladder():
    job = Job(FULL, Source(topics.REQUESTS, 0, 1, 0), excluded={"sendgrid"})
    name, record = codec.decode(job.retry_record(2, 99, "mailgun: 503"))
    again = job_from_record(name, record, Source(topics.retry_topic(2), 0, 1, 0))
    assert again.mail == FULL and (again.level, again.due_at, again.excluded) == (2, 99, {"sendgrid"})


def test_a_full_mail_survives_a_schedule_hop():
    payload = codec.encode("mercury.MailRequest", FULL.to_record())
    name, record = codec.decode(payload)
    hop = topics.schedule_topics()[0]
    assert job_from_record(name, record, Source(hop, 0, 0, 1_000)).mail == FULL


def test_a_full_mail_survives_its_dead_letter_and_replay():
    letter = Letter(mail_id=FULL.id, reason="permanent", outcome="permanent", source_topic=topics.REQUESTS,
                    source_partition=0, source_offset=1,
                    payload=codec.encode("mercury.MailRequest", FULL.to_record()), dead_at=10, partition=0, offset=0)
    replayed = replayed_record(letter, 11)
    _, record = codec.decode(codec.encode("mercury.MailRequest", replayed))
    assert Mail.from_record(record) == Mail(**{**_fields(FULL), "replayed_at": 11})


def test_the_analytics_sink_still_makes_a_row_of_the_newest_version():
    _, record = codec.decode(codec.encode("mercury.MailRequest", FULL.to_record()))
    assert mail_row(record, 3, 7) == ("acme:m-full", "a@example.com", ["b@example.com"], "Spring", "text", "http",
                                      1_700_000_000_000, 3, 7, "acme")


def _fields(mail: Mail) -> dict:
    return {name: getattr(mail, name) for name in Mail.__dataclass_fields__}
