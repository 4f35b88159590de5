"""Mercury's schemas and their fixed ids.

The ids are part of the wire contract: every record carries one (Confluent wire format), and the ingest
gateway serves them under a Confluent Schema Registry compatible API so outside producers using
confluent-kafka's AvroSerializer resolve the same ids.
"""
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import orjson
from fastavro import parse_schema
from fastavro.schema import SchemaParseException, load_schema, to_parsing_canonical_form

from schemas import topics

AVRO_DIR = Path(__file__).resolve().parent / "avro"


@dataclass(frozen=True)
class RegisteredSchema:
    id: int
    name: str
    subject: str
    version: int
    parsed: dict
    canonical: str


# Mercury's record types by their Avro full names: what outside producers name too.
MAIL_REQUEST = "mercury.MailRequest"
RETRY_RECORD = "mercury.RetryRecord"
MAIL_EVENT = "mercury.MailEvent"
DEAD_LETTER = "mercury.DeadLetter"
PROVIDER_HEALTH = "mercury.ProviderHealth"
LEDGER_ENTRY = "mercury.LedgerEntry"
PROVIDER_EVENT = "mercury.ProviderEvent"
PROVIDER_ENTRY = "mercury.ProviderEntry"
CONFIGURATION = "mercury.Configuration"
API_KEY = "mercury.ApiKey"


def _subject(topic: str) -> str:
    return f"{topic}-value"


# Every retry level's topic shares one subject.
_RETRY_SUBJECT = _subject(topics.RETRY_PREFIX.rstrip("."))

# Subjects follow the TopicNameStrategy (<topic>-value) that AvroSerializer uses by default. A schema that
# gains fields gets a new id; the old one stays (its file under avro/v<n>/), so records written with it still
# decode, read into the newest version with the new fields' defaults.
_IDS = {
    1: (MAIL_REQUEST, _subject(topics.REQUESTS), "v1"),
    2: (RETRY_RECORD, _RETRY_SUBJECT, "v1"),
    3: (MAIL_EVENT, _subject(topics.EVENTS), ""),
    4: (DEAD_LETTER, _subject(topics.DEAD), ""),
    5: (PROVIDER_HEALTH, _subject(topics.HEALTH), ""),
    6: (LEDGER_ENTRY, _subject(topics.LEDGER), "v1"),
    7: (MAIL_REQUEST, _subject(topics.REQUESTS), "v2"),
    8: (RETRY_RECORD, _RETRY_SUBJECT, "v2"),
    9: (PROVIDER_EVENT, _subject(topics.FEEDBACK), ""),
    10: (MAIL_REQUEST, _subject(topics.REQUESTS), "v3"),
    11: (RETRY_RECORD, _RETRY_SUBJECT, "v3"),
    12: (MAIL_REQUEST, _subject(topics.REQUESTS), ""),
    13: (RETRY_RECORD, _RETRY_SUBJECT, ""),
    14: (PROVIDER_ENTRY, _subject(topics.PROVIDERS), ""),
    15: (CONFIGURATION, _subject(topics.CONFIGURATIONS), ""),
    16: (API_KEY, _subject(topics.API_KEYS), ""),
    17: (LEDGER_ENTRY, _subject(topics.LEDGER), ""),
}


@cache
def schemas() -> dict[int, RegisteredSchema]:
    loaded, versions = {}, {}
    for schema_id, (name, subject, folder) in sorted(_IDS.items()):
        expanded = load_schema(str(AVRO_DIR / folder / f"{name}.avsc"), _write_hint=False)
        versions[subject] = versions.get(subject, 0) + 1
        loaded[schema_id] = RegisteredSchema(
            id=schema_id,
            name=name,
            subject=subject,
            version=versions[subject],
            parsed=parse_schema(expanded),
            canonical=to_parsing_canonical_form(expanded),
        )
    return loaded


@cache
def by_name(name: str) -> RegisteredSchema:
    """The newest version of a schema: what Mercury writes and what every older version is read into."""
    found = [schema for schema in schemas().values() if schema.name == name]
    if not found:
        raise KeyError(name)
    return found[-1]


def subject_versions(subject: str) -> list[RegisteredSchema]:
    """Every version registered under a subject, oldest first; retry topics share one subject."""
    if subject.startswith("mail.retry."):
        subject = _RETRY_SUBJECT
    return [schema for schema in schemas().values() if schema.subject == subject]


def by_subject(subject: str) -> RegisteredSchema | None:
    """The newest schema registered under a subject."""
    versions = subject_versions(subject)
    return versions[-1] if versions else None


def match(schema_text: str) -> RegisteredSchema | None:
    """The registered schema whose canonical form equals the given schema text, if any."""
    try:
        candidate = to_parsing_canonical_form(parse_schema(orjson.loads(schema_text), _write_hint=False))
    # Whatever a hostile text makes the parser raise (a deep nesting ends in RecursionError) is a bad schema.
    except (ValueError, TypeError, KeyError, SchemaParseException, RecursionError) as err:
        raise ValueError(f"not a valid Avro schema: {err}") from err
    for schema in schemas().values():
        if schema.canonical == candidate:
            return schema
    return None
