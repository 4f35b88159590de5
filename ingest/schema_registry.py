"""The read-only subset of the Confluent Schema Registry API that outside producers need.

confluent-kafka's AvroSerializer registers (or looks up) its schema before the first write; answering
with Mercury's fixed ids lets a producer point `schema.registry.url` at the gateway and write records the
dispatcher decodes. A schema that is not Mercury's is refused, as a real registry refuses an incompatible one.
"""
import re
from typing import Annotated

import orjson
from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from typing_extensions import NotRequired, TypedDict

from ingest.bodies import BodyTooLarge, read_limited
from ingest.openapi import BAD_PARAMETER, answer_doc, body_doc
from schemas import registry

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
# Mercury's largest schema is a few kilobytes; nothing larger can be one of them.
MAX_BODY_BYTES = 262_144
_VERSION = re.compile(r"[0-9]{1,9}")
_routes = APIRouter(prefix="/schema-registry", tags=["schema registry"])
SUBJECT = Path(description="a topic's value subject",
               examples=sorted({schema.subject for schema in registry.schemas().values()}))


def _answer(body: object, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def _error(status: int, code: int, message: str) -> JSONResponse:
    return _answer({"error_code": code, "message": message}, status)


def _version(schema: registry.RegisteredSchema, subject: str) -> dict:
    return {"subject": subject, "version": schema.version, "id": schema.id, "schema": schema.canonical}


# What `/openapi.json` says about these routes --------------------------------------------------------------

class SchemaBody(TypedDict):
    """What a Confluent serializer registers or looks up."""

    schema: Annotated[str, Field(description="the Avro schema as JSON text")]
    schemaType: NotRequired[Annotated[str, Field(description="AVRO (the default)")]]


class RegistryError(TypedDict):
    error_code: int
    message: str


class RegisteredSchema(TypedDict):
    subject: str
    version: int
    id: int
    schema: str


class SchemaText(TypedDict):
    schema: str


class RegistryResponse(JSONResponse):
    """Documents the registry's own media type; Confluent clients expect it."""

    media_type = MEDIA_TYPE


MODELS = (SchemaBody, RegistryError, RegisteredSchema, SchemaText)
_REGISTRY_NOT_FOUND = answer_doc(RegistryError, "no such subject, version or schema id", MEDIA_TYPE)
REGISTRY_SUBJECTS = {"response_class": RegistryResponse, "responses": {200: {
    "description": "Mercury's subjects", "content": {MEDIA_TYPE: {"schema": {"type": "array",
                                                                             "items": {"type": "string"}}}}}}}
REGISTRY_SCHEMA_BY_ID = {"response_class": RegistryResponse, "responses": {
    200: answer_doc(SchemaText, "the schema", MEDIA_TYPE), 404: _REGISTRY_NOT_FOUND, 422: BAD_PARAMETER}}
REGISTRY_VERSIONS = {"response_class": RegistryResponse, "responses": {200: {
    "description": "the subject's versions", "content": {MEDIA_TYPE: {"schema": {"type": "array",
                                                                                 "items": {"type": "integer"}}}}},
    404: _REGISTRY_NOT_FOUND}}
REGISTRY_VERSION = {"response_class": RegistryResponse, "responses": {
    200: answer_doc(RegisteredSchema, "that version", MEDIA_TYPE), 404: _REGISTRY_NOT_FOUND}}
REGISTRY_REGISTER = {
    "response_class": RegistryResponse,
    "openapi_extra": body_doc(SchemaBody, MEDIA_TYPE),
    "responses": {
        200: answer_doc(RegisteredSchema, "the schema is one of Mercury's: its fixed id", MEDIA_TYPE),
        404: answer_doc(RegistryError, "the subject is not one of Mercury's topics", MEDIA_TYPE),
        400: answer_doc(RegistryError, "the body is not JSON", MEDIA_TYPE),
        409: answer_doc(RegistryError, "the schema is not compatible with Mercury's", MEDIA_TYPE),
        413: answer_doc(RegistryError, "the body is larger than any of Mercury's schemas", MEDIA_TYPE),
        422: answer_doc(RegistryError, "the body is not a valid schema", MEDIA_TYPE),
    },
}


@_routes.get("/subjects", **REGISTRY_SUBJECTS)
def subjects() -> JSONResponse:
    return _answer([s.subject for s in registry.schemas().values()])


@_routes.get("/schemas/ids/{schema_id}", **REGISTRY_SCHEMA_BY_ID)
def schema_by_id(schema_id: int) -> JSONResponse:
    schema = registry.schemas().get(schema_id)
    if schema is None:
        return _error(404, 40403, f"schema {schema_id} not found")
    return _answer({"schema": schema.canonical})


@_routes.get("/subjects/{subject}/versions", **REGISTRY_VERSIONS)
def versions(subject: str = SUBJECT) -> JSONResponse:
    versions = registry.subject_versions(subject)
    if not versions:
        return _error(404, 40401, f"subject {subject!r} not found")
    return _answer([schema.version for schema in versions])


@_routes.get("/subjects/{subject}/versions/{version}", **REGISTRY_VERSION)
def version(version: str, subject: str = SUBJECT) -> JSONResponse:
    versions = registry.subject_versions(subject)
    if not versions:
        return _error(404, 40401, f"subject {subject!r} not found")
    # Versions are small: a long or non-ASCII digit string (str.isdigit accepts '²') is no version.
    wanted = len(versions) if version in ("latest", "-1") else int(version) if _VERSION.fullmatch(version) else 0
    if not 1 <= wanted <= len(versions):
        return _error(404, 40402, f"version {version} not found")
    return _answer(_version(versions[wanted - 1], subject))


@_routes.post("/subjects/{subject}/versions", **REGISTRY_REGISTER)
@_routes.post("/subjects/{subject}", **REGISTRY_REGISTER)
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


def install(app: FastAPI) -> None:
    """Open to anyone, as a schema registry is: it serves only the public contract."""
    app.include_router(_routes)
