"""The wire contract: Confluent framing, fixed schema ids, and clear reasons for records that break it."""
import io

import fastavro
import pytest

from schemas import codec, registry

MAIL = {"id": "m1", "sender": "a@example.com", "recipients": ["b@example.com"], "subject": "s",
        "content": "c", "created_at": 1_700_000_000_000, "origin": "http"}
# What a record without the later fields decodes with.
DEFAULTS = {"send_at": 0, "replayed_at": 0, "html": "", "cc": [], "bcc": [], "reply_to": "", "headers": {},
            "attachments": [], "tags": [], "metadata": {}, "tenant": "default"}


def test_a_record_round_trips_with_its_schema_id_in_the_header():
    payload = codec.encode("mercury.MailRequest", MAIL)
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == registry.by_name("mercury.MailRequest").id
    assert codec.decode(payload) == ("mercury.MailRequest", {**MAIL, **DEFAULTS})


def test_a_record_written_with_the_first_schema_version_decodes_into_the_newest():
    first = registry.schemas()[1]
    assert first.name == "mercury.MailRequest" and first.version == 1 < registry.by_name(first.name).version
    buffer = io.BytesIO()
    buffer.write(b"\x00" + first.id.to_bytes(4, "big"))
    fastavro.schemaless_writer(buffer, first.parsed, MAIL)
    assert codec.decode(buffer.getvalue()) == ("mercury.MailRequest", {**MAIL, **DEFAULTS})
    assert registry.match(first.canonical) is first


def test_every_subject_lists_its_versions_oldest_first():
    versions = registry.subject_versions("mail.retry.3-value")
    assert [s.version for s in versions] == [1, 2, 3, 4] and versions[-1] is registry.by_name("mercury.RetryRecord")


def test_a_record_from_an_older_producer_without_origin_gets_the_default():
    record = {k: v for k, v in MAIL.items() if k != "origin"}
    assert codec.decode(codec.encode("mercury.MailRequest", record))[1]["origin"] == "kafka"


def test_a_record_that_does_not_fit_its_schema_is_refused_on_encode():
    with pytest.raises(ValueError, match="MailRequest"):
        codec.encode("mercury.MailRequest", {k: v for k, v in MAIL.items() if k != "sender"})


@pytest.mark.parametrize("payload, reason", [
    (None, "empty"),
    (b"\x00\x00", "shorter than"),
    (b"{\"id\": 1}", "magic byte"),
    (b"\x00\x00\x00\x03\xe7abc", "unknown schema id 999"),
    (b"\x00\x00\x00\x00\x01\x80", "does not decode"),
])
def test_broken_records_are_refused_with_the_reason(payload, reason):
    with pytest.raises(codec.DecodeError, match=reason):
        codec.decode(payload)


def test_trailing_bytes_are_refused():
    with pytest.raises(codec.DecodeError, match="trailing"):
        codec.decode(codec.encode("mercury.MailRequest", MAIL) + b"\x00")


def test_every_schema_version_has_a_unique_id_and_subject_version():
    schemas = registry.schemas().values()
    assert len({s.id for s in schemas}) == len({(s.subject, s.version) for s in schemas}) == len(schemas)


def test_only_mercurys_own_schema_matches():
    text = (registry.AVRO_DIR / "mercury.MailRequest.avsc").read_text()
    assert registry.match(text).name == "mercury.MailRequest"
    assert registry.match('{"type": "record", "name": "Other", "fields": []}') is None
    with pytest.raises(ValueError, match="not a valid Avro schema"):
        registry.match("{not json")
