"""What `/openapi.json` says about the keys routes (ingest.keys.routes): the key to mint, and each answer.

Scopes, the tenant pattern and a key's limits come from the key model (ingest.keys.api_key)."""
from typing import Annotated, Literal

from pydantic import ConfigDict, Field
from typing_extensions import NotRequired, TypedDict

from ingest.keys.api_key import MAX_NAME, MAX_RATE, Scope
from ingest.openapi import (
    BAD_PARAMETER,
    NOT_FOUND,
    RETRY_AFTER,
    SMALL_BODY_TOO_LARGE,
    answer_doc,
    body_doc,
    error_doc,
)
from schemas.model import TENANT_PATTERN

ScopeName = Literal[tuple(scope.value for scope in Scope)]


class KeyBody(TypedDict):
    """A key to mint. Unknown fields are refused (422 naming the field)."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    tenant: NotRequired[Annotated[str, Field(pattern=TENANT_PATTERN, description=(
        "whose mails the key sends and reads; default the caller's tenant (a tenant administrator may name "
        "no other)"))]]
    scopes: NotRequired[Annotated[list[ScopeName], Field(
        min_length=1, description="default send and read; only an operator mints an operator key")]]
    name: NotRequired[Annotated[str, Field(max_length=MAX_NAME, description="what the key is for")]]
    rate_per_s: NotRequired[Annotated[float, Field(ge=0, le=int(MAX_RATE), description=(
        "requests per second (a batch takes one per mail); 0 unlimited; default MERCURY_KEY_RATE_PER_S"))]]
    burst: NotRequired[Annotated[int, Field(ge=0, le=int(MAX_RATE),
                                            description="requests at once; default twice the rate")]]


class ApiKeyAnswer(TypedDict):
    """A key as the API shows it: never its secret, never its hash."""

    id: str
    tenant: str
    scopes: list[str]
    name: str
    rate_per_s: float | None
    burst: int | None
    created_at: int
    revoked_at: int | None
    active: bool


class NewKey(ApiKeyAnswer):
    key: Annotated[str, Field(description="the token, `mk_<id>_<secret>`: shown here once, stored nowhere")]
    url: str


class KeyList(TypedDict):
    keys: list[ApiKeyAnswer]


MODELS = (KeyBody, ApiKeyAnswer, NewKey, KeyList)

_KEYS_DOWN = error_doc("the key topic is unavailable", RETRY_AFTER)
CREATE_KEY = {"openapi_extra": body_doc(KeyBody), "responses": {
    201: answer_doc(NewKey, "the key, with its token this once", headers={"Location": "the key's URL"}),
    400: error_doc("the body is not a JSON object"),
    403: error_doc("a tenant administrator asked for another tenant's key or an operator key"),
    413: SMALL_BODY_TOO_LARGE, 422: error_doc("a field is wrong; the answer names it"),
    503: _KEYS_DOWN}}
LIST_KEYS = {"responses": {200: answer_doc(KeyList,
                                           "every key the caller may see (of `tenant`, if given), oldest first"),
                           403: error_doc("a tenant administrator named another tenant"), 422: BAD_PARAMETER}}
GET_KEY = {"responses": {200: answer_doc(ApiKeyAnswer, "the key"), 404: NOT_FOUND, 422: BAD_PARAMETER}}
REVOKE_KEY = {"responses": {200: answer_doc(ApiKeyAnswer, "the key, revoked (again revoking changes nothing)"),
                            404: NOT_FOUND, 422: BAD_PARAMETER, 503: _KEYS_DOWN}}
