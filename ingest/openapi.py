"""What `/openapi.json` shares across the gateway's route groups: the helpers that build a route's entry, the
error shape and the error answers several groups give, and the document itself (`install`). Each group keeps its
own models and entries beside its routes (ingest.mails.openapi, ingest.keys.openapi, ingest.control.openapi,
ingest.operator.openapi, ingest.webhooks.openapi; ingest.mails.batch, ingest.schema_registry, ingest.index and
ingest.metrics in the module itself), and names the models its entries refer to in `MODELS`.

Several endpoints read their body as raw bytes (size limit first, then their own parsing and error answers), so
FastAPI cannot see the body; a group's models document it without changing what the endpoint accepts. Each
route's decorator takes its entry (`**docs.CREATE_MAIL`): `responses`, and `openapi_extra` for a body.
"""
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import Field, TypeAdapter
from typing_extensions import NotRequired, TypedDict

JSON = "application/json"
_COMPONENTS = "#/components/schemas/{model}"
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


# The error answer ------------------------------------------------------------------------------------------

class ErrorAnswer(TypedDict):
    """Every error the gateway's own endpoints answer."""

    error: Annotated[str, Field(description="what is wrong, naming the field")]
    field: NotRequired[Annotated[str, Field(description="the request field that is wrong")]]
    mail_id: NotRequired[Annotated[str, Field(description="the id the rejection is recorded under (mail POST)")]]


# Route entries ---------------------------------------------------------------------------------------------

def answer_doc(model: type | None, description: str, media_type: str = JSON,
               headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An answer's entry in a route's `responses`: its description, its body's model and its headers."""
    answer: dict[str, Any] = {"description": description}
    if model is not None:
        answer["content"] = {media_type: {"schema": {"$ref": _COMPONENTS.format(model=model.__name__)}}}
    if headers:
        answer["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                             for name, text in headers.items()}
    return answer


def error_doc(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An error answer's entry: the one error shape every route of the gateway answers with."""
    return answer_doc(ErrorAnswer, description, headers=headers)


def body_doc(model: type, media_type: str = JSON, required: bool = True) -> dict[str, Any]:
    """A route's `openapi_extra` for a body the handler reads itself, described by `model`."""
    schema = {"$ref": _COMPONENTS.format(model=model.__name__)}
    return {"requestBody": {"required": required, "content": {media_type: {"schema": schema}}}}


RETRY_AFTER = {"Retry-After": "seconds to wait before retrying"}
STORE_DOWN = error_doc("the mail history store (ClickHouse) is unavailable", RETRY_AFTER)
NOT_FOUND = error_doc("nothing is known under that id")
BAD_PARAMETER = error_doc("a parameter is malformed; the answer names it")
TOO_LARGE = error_doc("the body is larger than MERCURY_MAX_BODY_BYTES")
SMALL_BODY_TOO_LARGE = error_doc("the body is larger than 64 KiB, the limit of keys, providers and configurations")


# Every route that takes a key may also answer these.
AUTH_ANSWERS = {
    "401": error_doc("no API key, or one that is unknown, revoked or mistyped",
                  {"WWW-Authenticate": 'Bearer realm="mercury"'}),
    "403": error_doc("the key lacks the scope this route needs"),
    "429": error_doc("the key is over its request rate", {"Retry-After": "seconds until a request is admitted"}),
    "503": error_doc("the API keys (or what the route reads) are unavailable", RETRY_AFTER),
}


# The document ----------------------------------------------------------------------------------------------

# The error shape every group's entries refer to; each group's own models come to `install` as its `MODELS`.
_DOCUMENTED = (ErrorAnswer,)


def components(*models: type) -> dict[str, Any]:
    """The shared error shape and `models` (the route groups' `MODELS`), and the models they use, as OpenAPI
    components (serialization mode: as sent)."""
    found: dict[str, Any] = {}
    for model in (*_DOCUMENTED, *models):
        schema = TypeAdapter(model).json_schema(ref_template=_COMPONENTS)
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def install(app: FastAPI, *models: type) -> None:
    """Serve the generated schema with the components the route entries refer to, `models` being every route
    group's `MODELS`; built once, on first use.

    FastAPI documents its own `{"detail": [...]}` for a parameter that fails validation; the gateway's handler
    answers the Error shape instead, so that is what the schema says."""

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            schemas.update(components(*models))
            for operation in (op for path in document["paths"].values() for op in path.values()):
                if "security" in operation:
                    operation["responses"] = {**AUTH_ANSWERS, **operation["responses"]}
                content = operation["responses"].get("422", {}).get("content", {})
                if content.get(JSON, {}).get("schema") == {"$ref": _FASTAPI_422}:
                    operation["responses"]["422"] = BAD_PARAMETER
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = schema
