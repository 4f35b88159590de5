"""Avro in Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body.

Encoding writes Mercury's own schemas by name; decoding accepts any registered schema id, so the same
bytes an outside producer writes with confluent-kafka's AvroSerializer decode here.
"""
import io
import struct

from fastavro import schemaless_reader, schemaless_writer

from schemas import registry

MAGIC = 0
_HEADER = struct.Struct(">bI")


class DecodeError(ValueError):
    """A record that is not a valid Mercury record; the caller dead-letters it with this reason."""


def encode(schema_name: str, record: dict) -> bytes:
    """Serialize a record; raises ValueError when it does not fit the schema."""
    schema = registry.by_name(schema_name)
    buffer = io.BytesIO()
    buffer.write(_HEADER.pack(MAGIC, schema.id))
    try:
        schemaless_writer(buffer, schema.parsed, record)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"record does not fit {schema_name}: {err}") from err
    return buffer.getvalue()


def decode(payload: bytes | None) -> tuple[str, dict]:
    """Return (schema name, record); raises DecodeError naming what is wrong."""
    if not payload or len(payload) < _HEADER.size:
        raise DecodeError("record is empty or shorter than the Confluent wire-format header")
    magic, schema_id = _HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise DecodeError(f"unknown magic byte {magic}: not Confluent wire format")
    schema = registry.schemas().get(schema_id)
    if schema is None:
        raise DecodeError(f"unknown schema id {schema_id}")
    body = io.BytesIO(payload)
    body.seek(_HEADER.size)
    try:
        newest = registry.by_name(schema.name)
        record = schemaless_reader(body, schema.parsed, None if newest is schema else newest.parsed)
    except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError, OverflowError) as err:
        raise DecodeError(f"body does not decode as {schema.name}: {err!r}") from err
    if body.tell() != len(payload):
        raise DecodeError(f"{len(payload) - body.tell()} trailing bytes after a {schema.name} body")
    return schema.name, record
