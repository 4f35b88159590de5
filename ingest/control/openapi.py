"""What `/openapi.json` says about the provider registry (ingest.control.providers) and the configurations
(ingest.control.configurations): the bodies they read themselves, and each answer.

Provider types, each type's settings and secrets, provider ids and configuration ids come from their owners in
schemas.control, so a new type, setting or configuration shows here by itself."""
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field
from typing_extensions import NotRequired, TypedDict

from ingest.openapi import (
    NOT_FOUND,
    RETRY_AFTER,
    SMALL_BODY_TOO_LARGE,
    answer_doc,
    body_doc,
    error_doc,
)
from schemas.control.configurations import BREAKERS, IDS, RATE_LIMITS, RETRY_LADDER
from schemas.control.provider_entries import ID
from schemas.control.provider_settings import TYPES, settings_of

# The provider registry -------------------------------------------------------------------------------------

ProviderType = Literal[tuple(TYPES)]
SettingValue = Annotated[str | float, Field(description="text; a number is taken as its text")]


def _listed(words: list[str]) -> str:
    return f"{', '.join(words[:-1])} and {words[-1]}" if len(words) > 1 else words[0]


def _names_by_type(secret: bool) -> str:
    """Each type's settings (or secrets) by name: types with the same ones together, those every type has last
    (`mailgun: base_url, domain; sendgrid and postmark: base_url; ...; every type: connect_timeout, ...`)."""
    names = {kind: [s.name for s in settings_of(kind) if s.secret == secret] for kind in TYPES}
    common = ([name for name in next(iter(names.values())) if all(name in own for own in names.values())]
              if len(names) > 1 else [])
    types_by_names: dict[tuple[str, ...], list[str]] = {}
    for kind, own in names.items():
        if rest := tuple(name for name in own if name not in common):
            types_by_names.setdefault(rest, []).append(kind)
    parts = [f"{_listed(kinds)}: {', '.join(rest)}" for rest, kinds in types_by_names.items()]
    if common:
        parts.append(f"every type: {', '.join(common)}")
    return "; ".join(parts)


_SETTINGS = (f"the type's settings by name ({_names_by_type(secret=False)}); those left out come from the "
             "environment")
_SECRETS = (f"write-only secrets by name ({_names_by_type(secret=True)}), encrypted with MERCURY_SECRETS_KEY; "
            "never returned")


class ProviderBody(TypedDict):
    """A provider to add. Unknown fields are refused (422 naming the field)."""

    __pydantic_config__ = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"id": "mailgun-eu", "type": "mailgun", "settings": {"base_url": "https://api.eu.mailgun.net",
                                                             "domain": "mg.example.com"},
         "secrets": {"api_key": "key-..."}}]})
    id: Annotated[str, Field(pattern=ID.pattern, description="its name in events, breakers and rate limits")]
    type: ProviderType
    enabled: NotRequired[Annotated[bool, Field(description="default true")]]
    settings: NotRequired[Annotated[dict[str, SettingValue], Field(description=_SETTINGS)]]
    secrets: NotRequired[Annotated[dict[str, str], Field(description=_SECRETS)]]


class ProviderChange(TypedDict):
    """What to change; fields left out stay. In `settings` and `secrets` each name given is set, and null drops
    the API's value (the environment's applies again)."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    type: NotRequired[ProviderType]
    enabled: NotRequired[Annotated[bool, Field(description="false: no mail is sent through it")]]
    settings: NotRequired[Annotated[dict[str, SettingValue | None], Field(description=_SETTINGS)]]
    secrets: NotRequired[Annotated[dict[str, str | None], Field(description=_SECRETS)]]


SettingSource = Literal["api", "environment", "default"]


class ProviderAnswer(TypedDict):
    """A provider as the dispatchers use it; secrets only by name."""

    id: str
    type: ProviderType
    enabled: bool
    source: Annotated[Literal["api", "environment"], Field(description="set through the API, or the environment's")]
    settings: Annotated[dict[str, str], Field(description="every setting that is not a secret, effective value")]
    secrets: Annotated[list[str], Field(description="the secrets that are set (never their values)")]
    sources: Annotated[dict[str, SettingSource], Field(description="where each setting and secret comes from")]
    updated_at: Annotated[int | None, Field(description="ms since the epoch; null for the environment's")]
    url: str


class ProviderList(TypedDict):
    providers: list[ProviderAnswer]


# The configurations ----------------------------------------------------------------------------------------

ConfigurationId = Literal[IDS]
_VALUE = (f'{RETRY_LADDER}: {{"delays_s": [seconds, ...]}} with at most as many levels as there are retry topics; '
          f'{BREAKERS}: {{"failures": n, "recovery_s": seconds}}; {RATE_LIMITS}: {{"<provider>": sends per second}}')


class ConfigurationBody(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"id": BREAKERS, "value": {"failures": 3, "recovery_s": 30}}]})
    id: ConfigurationId
    value: Annotated[dict[str, Any], Field(description=_VALUE)]


class ConfigurationChange(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")
    value: Annotated[dict[str, Any], Field(description=_VALUE)]


class ConfigurationAnswer(TypedDict):
    id: ConfigurationId
    value: Annotated[dict[str, Any], Field(description="the value the dispatchers use")]
    source: Literal["api", "environment"]
    environment: Annotated[dict[str, Any], Field(description="the environment's value, used again after DELETE")]
    updated_at: Annotated[int | None, Field(description="ms since the epoch; null for the environment's")]
    url: str


class ConfigurationList(TypedDict):
    configurations: list[ConfigurationAnswer]


MODELS = (ProviderBody, ProviderChange, ProviderAnswer, ProviderList, ConfigurationBody, ConfigurationChange,
          ConfigurationAnswer, ConfigurationList)


# Route entries ---------------------------------------------------------------------------------------------

_CONTROL_DOWN = error_doc("the broker did not answer in time; nothing was changed", RETRY_AFTER)
_DELETED = {"description": "removed"}
LIST_PROVIDERS = {"responses": {200: answer_doc(ProviderList, "every provider the dispatchers have, enabled or not"),
                                503: _CONTROL_DOWN}}
GET_PROVIDER = {"responses": {200: answer_doc(ProviderAnswer, "the provider"), 404: NOT_FOUND, 503: _CONTROL_DOWN}}
CREATE_PROVIDER = {"openapi_extra": body_doc(ProviderBody), "responses": {
    201: answer_doc(ProviderAnswer, "stored; every dispatcher worker applies it", headers={"Location": "its URL"}),
    400: error_doc("the body is not a JSON object"), 409: error_doc("a provider with that id exists (PUT changes it)"),
    413: SMALL_BODY_TOO_LARGE, 422: error_doc("a field is wrong; the answer names it"),
    503: error_doc("the broker did not answer, or secrets were given and MERCURY_SECRETS_KEY is not set",
                   RETRY_AFTER)}}
CHANGE_PROVIDER = {"openapi_extra": body_doc(ProviderChange), "responses": {
    200: answer_doc(ProviderAnswer, "stored; every dispatcher worker applies it"),
    400: error_doc("the body is not a JSON object"), 404: NOT_FOUND, 413: SMALL_BODY_TOO_LARGE,
    422: error_doc("a field is wrong; the answer names it"),
    503: error_doc("the broker did not answer, or secrets were changed and MERCURY_SECRETS_KEY is not set or does "
                   "not open the stored ones", RETRY_AFTER)}}
DELETE_PROVIDER = {"responses": {204: _DELETED, 404: NOT_FOUND, 503: _CONTROL_DOWN}}
LIST_CONFIGURATIONS = {"responses": {200: answer_doc(ConfigurationList, "every configuration with its effective value"),
                                     503: _CONTROL_DOWN}}
GET_CONFIGURATION = {"responses": {200: answer_doc(ConfigurationAnswer, "the configuration"), 404: NOT_FOUND,
                                   503: _CONTROL_DOWN}}
CREATE_CONFIGURATION = {"openapi_extra": body_doc(ConfigurationBody), "responses": {
    201: answer_doc(ConfigurationAnswer, "stored; every dispatcher worker applies it", headers={"Location": "its URL"}),
    400: error_doc("the body is not a JSON object"), 409: error_doc("a value is set already (PUT changes it)"),
    413: SMALL_BODY_TOO_LARGE, 422: error_doc("an unknown id or a bad value; the answer names the field"),
    503: _CONTROL_DOWN}}
CHANGE_CONFIGURATION = {"openapi_extra": body_doc(ConfigurationChange), "responses": {
    200: answer_doc(ConfigurationAnswer, "stored; every dispatcher worker applies it"),
    400: error_doc("the body is not a JSON object"), 404: NOT_FOUND, 413: SMALL_BODY_TOO_LARGE,
    422: error_doc("a bad value; the answer names the field"), 503: _CONTROL_DOWN}}
DELETE_CONFIGURATION = {"responses": {204: _DELETED, 404: error_doc("no value set through the API under that id"),
                                      503: _CONTROL_DOWN}}
