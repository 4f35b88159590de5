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
from fastavro.schema import load_schema, to_parsing_canonical_form

AVRO_DIR = Path(__file__).resolve().parent / "avro"


@dataclass(frozen=True)
class RegisteredSchema:
    id: int
    name: str
    subject: str
    parsed: dict
    canonical: str


# Subjects follow the TopicNameStrategy (<topic>-value) that AvroSerializer uses by default.
_IDS = {
    1: ("mercury.MailRequest", "mail.requests-value"),
    2: ("mercury.RetryRecord", "mail.retry-value"),
    3: ("mercury.MailEvent", "mail.events-value"),
    4: ("mercury.DeadLetter", "mail.dead-value"),
}


@cache
def schemas() -> dict[int, RegisteredSchema]:
    loaded = {}
    for schema_id, (name, subject) in _IDS.items():
        expanded = load_schema(str(AVRO_DIR / f"{name}.avsc"), _write_hint=False)
        loaded[schema_id] = RegisteredSchema(
            id=schema_id,
            name=name,
            subject=subject,
            parsed=parse_schema(expanded),
            canonical=to_parsing_canonical_form(expanded),
        )
    return loaded


def by_name(name: str) -> RegisteredSchema:
    for schema in schemas().values():
        if schema.name == name:
            return schema
    raise KeyError(name)


def by_subject(subject: str) -> RegisteredSchema | None:
    """The schema registered under a subject; retry topics share one subject."""
    if subject.startswith("mail.retry."):
        subject = "mail.retry-value"
    for schema in schemas().values():
        if schema.subject == subject:
            return schema
    return None


def match(schema_text: str) -> RegisteredSchema | None:
    """The registered schema whose canonical form equals the given schema text, if any."""
    try:
        candidate = to_parsing_canonical_form(parse_schema(orjson.loads(schema_text), _write_hint=False))
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError) as err:
        raise ValueError(f"not a valid Avro schema: {err}") from err
    for schema in schemas().values():
        if schema.canonical == candidate:
            return schema
    return None
