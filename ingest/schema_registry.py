"""The read-only subset of the Confluent Schema Registry API that outside producers need.

confluent-kafka's AvroSerializer registers (or looks up) its schema before the first write; answering
with Mercury's fixed ids lets a producer point `schema.registry.url` at the gateway and write records the
dispatcher decodes. A schema that is not Mercury's is refused, as a real registry refuses an incompatible one.
"""
import re

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from ingest import openapi
from ingest.bodies import BodyTooLarge, read_limited
from schemas import registry

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
# Mercury's largest schema is a few kilobytes; nothing larger can be one of them.
MAX_BODY_BYTES = 262_144
_VERSION = re.compile(r"[0-9]{1,9}")
router = APIRouter(prefix="/schema-registry", tags=["schema registry"])
SUBJECT = Path(description="a topic's value subject",
               examples=sorted({schema.subject for schema in registry.schemas().values()}))


def _answer(body: object, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def _error(status: int, code: int, message: str) -> JSONResponse:
    return _answer({"error_code": code, "message": message}, status)


def _version(schema: registry.RegisteredSchema, subject: str) -> dict:
    return {"subject": subject, "version": schema.version, "id": schema.id, "schema": schema.canonical}


@router.get("/subjects", **openapi.REGISTRY_SUBJECTS)
def subjects() -> JSONResponse:
    return _answer([s.subject for s in registry.schemas().values()])


@router.get("/schemas/ids/{schema_id}", **openapi.REGISTRY_SCHEMA_BY_ID)
def schema_by_id(schema_id: int) -> JSONResponse:
    schema = registry.schemas().get(schema_id)
    if schema is None:
        return _error(404, 40403, f"schema {schema_id} not found")
    return _answer({"schema": schema.canonical})


@router.get("/subjects/{subject}/versions", **openapi.REGISTRY_VERSIONS)
def versions(subject: str = SUBJECT) -> JSONResponse:
    versions = registry.subject_versions(subject)
    if not versions:
        return _error(404, 40401, f"subject {subject!r} not found")
    return _answer([schema.version for schema in versions])


@router.get("/subjects/{subject}/versions/{version}", **openapi.REGISTRY_VERSION)
def version(version: str, subject: str = SUBJECT) -> JSONResponse:
    versions = registry.subject_versions(subject)
    if not versions:
        return _error(404, 40401, f"subject {subject!r} not found")
    # Versions are small: a long or non-ASCII digit string (str.isdigit accepts '²') is no version.
    wanted = len(versions) if version in ("latest", "-1") else int(version) if _VERSION.fullmatch(version) else 0
    if not 1 <= wanted <= len(versions):
        return _error(404, 40402, f"version {version} not found")
    return _answer(_version(versions[wanted - 1], subject))


@router.post("/subjects/{subject}/versions", **openapi.REGISTRY_REGISTER)
@router.post("/subjects/{subject}", **openapi.REGISTRY_REGISTER)
async def register(request: Request, subject: str = SUBJECT) -> JSONResponse:
    """Registration and lookup both answer with the fixed id when the schema is one of Mercury's versions."""
    expected = registry.by_subject(subject)
    if expected is None:
        return _error(404, 40401, f"subject {subject!r} is not one of Mercury's topics")
    try:
        body = orjson.loads(await read_limited(request, MAX_BODY_BYTES))
    except BodyTooLarge as err:
        return _error(413, 41301, str(err))
    except orjson.JSONDecodeError as err:
        return _error(400, 40001, f"body: not valid JSON ({err})")
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        return _error(422, 42201, "body: must be a JSON object with the schema as a string in `schema`")
    try:
        offered = registry.match(body["schema"])
    except ValueError as err:
        return _error(422, 42201, f"invalid schema: {err}")
    if offered is None or offered.subject != expected.subject:
        return _error(409, 409, f"schema is not compatible with {expected.name}; "
                                f"fetch it from /schema-registry/schemas/ids/{expected.id}")
    return _answer(_version(offered, subject))
