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

AVRO_DIR = Path(__file__).resolve().parent / "avro"


@dataclass(frozen=True)
class RegisteredSchema:
    id: int
    name: str
    subject: str
    version: int
    parsed: dict
    canonical: str


# Subjects follow the TopicNameStrategy (<topic>-value) that AvroSerializer uses by default. A schema that
# gains fields gets a new id; the old one stays (its file under avro/v<n>/), so records written with it still
# decode, read into the newest version with the new fields' defaults.
_IDS = {
    1: ("mercury.MailRequest", "mail.requests-value", "v1"),
    2: ("mercury.RetryRecord", "mail.retry-value", "v1"),
    3: ("mercury.MailEvent", "mail.events-value", ""),
    4: ("mercury.DeadLetter", "mail.dead-value", ""),
    5: ("mercury.ProviderHealth", "mail.health-value", ""),
    6: ("mercury.LedgerEntry", "mail.ledger-value", "v1"),
    7: ("mercury.MailRequest", "mail.requests-value", "v2"),
    8: ("mercury.RetryRecord", "mail.retry-value", "v2"),
    9: ("mercury.ProviderEvent", "mail.feedback-value", ""),
    10: ("mercury.MailRequest", "mail.requests-value", "v3"),
    11: ("mercury.RetryRecord", "mail.retry-value", "v3"),
    12: ("mercury.MailRequest", "mail.requests-value", ""),
    13: ("mercury.RetryRecord", "mail.retry-value", ""),
    14: ("mercury.ProviderEntry", "mail.providers-value", ""),
    15: ("mercury.Configuration", "mail.configurations-value", ""),
    16: ("mercury.ApiKey", "mail.api-keys-value", ""),
    17: ("mercury.LedgerEntry", "mail.ledger-value", ""),
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
        subject = "mail.retry-value"
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
