"""What `/openapi.json` says about every route: request bodies, parameters, and each answer a route really
gives with the shape of its body. Kept here, apart from the handlers, so the contract reads in one place; a route
group with its models beside its handlers (ingest.mail_batch) builds its entries with the helpers below.

Several endpoints read their body as raw bytes (size limit first, then their own parsing and error answers), so
FastAPI cannot see the body; the models below document it without changing what the endpoint accepts. Each
route's decorator takes its entry (`**openapi.CREATE_MAIL`): `responses`, and `openapi_extra` for a body.
"""
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ConfigDict, Field, TypeAdapter
from typing_extensions import NotRequired, TypedDict

JSON = "application/json"
REGISTRY_JSON = "application/vnd.schemaregistry.v1+json"
_COMPONENTS = "#/components/schemas/{model}"
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


# Request bodies --------------------------------------------------------------------------------------------

# Addresses as the gateway reads them: one address, several in one string, or a list.
Email = Annotated[str, Field(json_schema_extra={"format": "email"})]
Addresses = Annotated[Email | Annotated[str, Field(min_length=1)] | Annotated[list[Email], Field(min_length=1)], Field(
    description="one address, several in one string (separated by commas, semicolons or spaces), or a list")]
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class Attachment(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")
    filename: Annotated[str, Field(description="name shown to the recipient, without path separators")]
    content_type: Annotated[str, Field(description="MIME type, type/subtype", examples=["application/pdf"])]
    content: Annotated[str, Field(pattern=BASE64, description="the file, base64 (standard alphabet, padded)",
                                  json_schema_extra={"contentEncoding": "base64"})]


class MailBody(TypedDict):
    """The mail a client posts: a plain-text body (content), an HTML body, or both. Unknown fields are refused
    (422 naming the field)."""

    __pydantic_config__ = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"sender": "alice@example.com", "recipients": ["bob@example.com"], "subject": "Hello", "content": "Hi Bob",
         "tags": ["welcome"], "metadata": {"account": "42"}}]})
    sender: Annotated[Email, Field(description="the From address", examples=["alice@example.com"])]
    recipients: Addresses
    subject: Annotated[str, Field(description="one line")]
    content: NotRequired[Annotated[str, Field(description="plain-text body")]]
    send_at: NotRequired[Annotated[Timestamp | int, Field(
        description="not before this time: an RFC 3339 timestamp with a timezone, or ms since the epoch; "
                    "a past time means now, at most MERCURY_MAX_SCHEDULE_DAYS ahead")]]
    html: NotRequired[Annotated[str, Field(description="HTML body")]]
    cc: NotRequired[Addresses]
    bcc: NotRequired[Addresses]
    reply_to: NotRequired[Annotated[Email, Field(description="Reply-To address")]]
    headers: NotRequired[Annotated[dict[str, str], Field(
        description="custom headers by name (not those providers set)")]]
    attachments: NotRequired[Annotated[list[Attachment], Field(description="files sent with the mail")]]
    tags: NotRequired[Annotated[list[str], Field(description="labels the providers report back")]]
    metadata: NotRequired[Annotated[dict[str, str], Field(
        description="key-value pairs the providers carry and report back")]]


class ClientEventBody(TypedDict):
    """A client's own step in a mail's life; pipeline event names are refused."""

    event: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="lowercase letters, digits and '_'")]
    blob: NotRequired[Annotated[Any, Field(description="text, or any JSON value (stored as its JSON text)")]]
    created_by: NotRequired[Annotated[str, Field(max_length=64, description="who recorded it; default api")]]


class MailgunSignature(TypedDict):
    timestamp: str
    token: str
    signature: Annotated[str, Field(description="HMAC-SHA256 of timestamp + token, hex, with the signing key")]


# Mailgun's JSON webhook: one event, signed inside the body (a key with a dash needs the functional form).
MailgunWebhookBody = TypedDict("MailgunWebhookBody", {"signature": MailgunSignature, "event-data": dict[str, Any]})


class SchemaBody(TypedDict):
    """What a Confluent serializer registers or looks up."""

    schema: Annotated[str, Field(description="the Avro schema as JSON text")]
    schemaType: NotRequired[Annotated[str, Field(description="AVRO (the default)")]]


# Answers ---------------------------------------------------------------------------------------------------

class ErrorAnswer(TypedDict):
    """Every error the gateway's own endpoints answer."""

    error: Annotated[str, Field(description="what is wrong, naming the field")]
    field: NotRequired[Annotated[str, Field(description="the request field that is wrong")]]
    mail_id: NotRequired[Annotated[str, Field(description="the id the rejection is recorded under (mail POST)")]]


class RegistryError(TypedDict):
    error_code: int
    message: str


class Index(TypedDict):
    version: str
    endpoints: dict[str, str | list[str]]


class MailAccepted(TypedDict):
    id: str
    status: Literal["accepted"]
    url: str
    send_at: NotRequired[Annotated[int, Field(description="ms since the epoch, when the mail was given one")]]


class StoredMail(TypedDict):
    id: str
    sender: str
    recipients: list[str]
    subject: str
    content: str
    origin: Annotated[str, Field(description="http or kafka")]
    created_at: Annotated[int, Field(description="ms since the epoch")]
    status: Annotated[str, Field(description="the latest event, or queued")]
    url: str
    events_url: str


class MailPage(TypedDict):
    mails: list[StoredMail]
    page: int
    per_page: int
    total: int
    next: str | None


class MailEvent(TypedDict):
    id: str
    mail: str
    event: str
    created_at: Annotated[int, Field(description="ms since the epoch")]
    created_by: str
    provider: str | None
    outcome: str | None
    blob: Annotated[str, Field(description="JSON text, or empty")]


class MailEvents(TypedDict):
    mail: str
    events: list[MailEvent]


class Window(TypedDict):
    since: Annotated[int, Field(description="window start, ms since the epoch")]
    until: Annotated[int, Field(description="window end (excluded), ms since the epoch")]


class DurationStats(TypedDict):
    count: int
    max_ms: float | None
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class ProviderStats(TypedDict):
    provider: str
    attempts: int
    sent: int
    failed: int
    success_rate: float | None
    failure_rate: float | None
    latency_ms: DurationStats


class ProvidersAnswer(Window):
    providers: list[ProviderStats]


class TimelineBucket(TypedDict):
    bucket_start: int
    provider: str
    attempts: int
    sent: int
    failed: int
    success_rate: float | None
    failure_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class TimelineAnswer(Window):
    buckets: list[TimelineBucket]


class QueueTimeAnswer(Window):
    queue_time: DurationStats


class DeliveryTimeAnswer(Window):
    delivery_time: DurationStats


class FailureCauses(TypedDict):
    provider: str | None
    network: int
    provider_outage: int
    rate_limit: int
    permanent: int
    provider_failure: int
    ambiguous: int
    other: int
    total: int


class FailureCausesAnswer(Window):
    failure_causes: list[FailureCauses]


class Breakers(TypedDict):
    providers: Annotated[list[dict[str, Any]], Field(description="each provider's breaker as last recorded")]
    changes: Annotated[list[dict[str, Any]], Field(description="every change in the window, oldest first")]


class BreakersAnswer(Window):
    breakers: Breakers


class FeedbackAnswer(Window):
    feedback: Annotated[list[dict[str, Any]], Field(description="per provider: counts of each reported event")]


class UnfinishedMail(TypedDict):
    mail: str
    accepted_at: int
    last_event: str | None
    last_event_at: int | None
    last_provider: str | None
    attempts: int
    age_ms: int


class UnfinishedAnswer(Window):
    mails: list[UnfinishedMail]


class Trace(TypedDict):
    mail: dict[str, Any] | None
    accepted_at: int | None
    rejected: bool
    providers_tried: list[str]
    failures: list[dict[str, Any]]
    status: str
    finished_at: int | None
    events: list[dict[str, Any]]
    feedback: list[dict[str, Any]]


class LagAnswer(TypedDict):
    measured_at: Annotated[int, Field(description="ms since the epoch")]
    groups: Annotated[list[dict[str, Any]], Field(description="per consumer group: lag, per topic and partition")]
    lag: int


class WebhookAnswer(TypedDict):
    published: Annotated[int, Field(description="records published to mail.feedback")]


class RegisteredSchema(TypedDict):
    subject: str
    version: int
    id: int
    schema: str


class SchemaText(TypedDict):
    schema: str


class KeyBody(TypedDict):
    """A key to mint. Unknown fields are refused (422 naming the field)."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    tenant: NotRequired[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description=(
        "whose mails the key sends and reads; default the caller's tenant (a tenant administrator may name "
        "no other)"))]]
    scopes: NotRequired[Annotated[list[Literal["send", "read", "tenant_admin", "operator"]], Field(
        min_length=1, description="default send and read; only an operator mints an operator key")]]
    name: NotRequired[Annotated[str, Field(max_length=200, description="what the key is for")]]
    rate_per_s: NotRequired[Annotated[float, Field(ge=0, le=1_000_000, description=(
        "requests per second (a batch takes one per mail); 0 unlimited; default MERCURY_KEY_RATE_PER_S"))]]
    burst: NotRequired[Annotated[int, Field(ge=0, le=1_000_000,
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
WINDOW_ERROR = error_doc("a malformed `since` or `until`, or `until` not after `since`; the answer names the field")
TOO_LARGE = error_doc("the body is larger than MERCURY_MAX_BODY_BYTES")
SMALL_BODY_TOO_LARGE = error_doc("the body is larger than 64 KiB, the limit of keys, providers and configurations")


def _window_route(model: type) -> dict[str, Any]:
    return {"responses": {200: answer_doc(model, "the answer over the window"), 422: WINDOW_ERROR, 503: STORE_DOWN}}


INDEX = {"responses": {200: answer_doc(Index, "the version and the endpoints")}}
CREATE_MAIL = {
    "openapi_extra": {**body_doc(MailBody), "parameters": [{
        "name": "Idempotency-Key", "in": "header", "required": False,
        "description": "a retry with the same key and body gets the first answer again and creates no second mail",
        "schema": {"type": "string", "pattern": "^[\\x20-\\x7e]{1,255}$"}}]},
    "responses": {
        202: answer_doc(MailAccepted, "the broker has the mail; it will be delivered", headers={
            "Location": "the mail's URL", "MailId": "the mail's id",
            "Idempotent-Replayed": "`true` when this is the first answer to the same key and body again"}),
        400: error_doc("the body is not a JSON object, or the Idempotency-Key header is malformed"),
        413: TOO_LARGE,
        422: error_doc("a field is wrong (the answer names it), or the key was used for a different body"),
        503: error_doc("the broker did not acknowledge the mail, or an Idempotency-Key cannot be checked now; nothing"
                    " was accepted", RETRY_AFTER),
    },
}
LIST_MAILS = {"responses": {200: answer_doc(MailPage, "one page of mails, newest first"), 422: BAD_PARAMETER,
                            503: STORE_DOWN}}
GET_MAIL = {"responses": {200: answer_doc(StoredMail, "the mail with its current status"), 404: NOT_FOUND,
                          422: BAD_PARAMETER, 503: STORE_DOWN}}
LIST_EVENTS = {"responses": {200: answer_doc(MailEvents, "the mail's events in order"), 404: NOT_FOUND,
                             422: BAD_PARAMETER, 503: STORE_DOWN}}
GET_EVENT = {"responses": {200: answer_doc(MailEvent, "the event"), 404: NOT_FOUND, 422: BAD_PARAMETER,
                           503: STORE_DOWN}}
CREATE_EVENT = {
    "openapi_extra": body_doc(ClientEventBody),
    "responses": {
        202: answer_doc(MailEvent, "the event is on mail.events", headers={"Location": "the event's URL"}),
        400: error_doc("the body is not a JSON object"),
        404: error_doc("no mail of the key's tenant under that id (yet: a mail shows up a moment after its 202)"),
        413: TOO_LARGE,
        422: error_doc("a field is wrong, or the event name is one the pipeline records itself"),
        503: error_doc("the event stream is unavailable; nothing was recorded", RETRY_AFTER),
    },
}
METRICS = {"response_class": PlainTextResponse,
           "responses": {200: {"description": "Prometheus text format, every worker's metrics added up",
                               "content": {"text/plain": {"schema": {"type": "string"}}}}}}

ANALYTICS_INDEX = {"responses": {200: {"description": "the analytics endpoints by name",
                                       "content": {JSON: {"schema": {"type": "object",
                                                                     "additionalProperties": {"type": "string"}}}}}}}
PROVIDERS = _window_route(ProvidersAnswer)
TIMELINE = _window_route(TimelineAnswer)
QUEUE_TIME = _window_route(QueueTimeAnswer)
DELIVERY_TIME = _window_route(DeliveryTimeAnswer)
FAILURE_CAUSES = _window_route(FailureCausesAnswer)
BREAKERS = _window_route(BreakersAnswer)
FEEDBACK = _window_route(FeedbackAnswer)
UNFINISHED = _window_route(UnfinishedAnswer)
TRACE = {"responses": {200: answer_doc(Trace, "the mail's whole life"), 404: NOT_FOUND, 422: BAD_PARAMETER,
                       503: STORE_DOWN}}
LAG = {"responses": {200: answer_doc(LagAnswer, "per consumer group, topic and partition: committed and end offsets"),
                     503: error_doc("the broker did not answer in time", RETRY_AFTER)}}

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
# Every route that takes a key may also answer these.
AUTH_ANSWERS = {
    "401": error_doc("no API key, or one that is unknown, revoked or mistyped",
                  {"WWW-Authenticate": "Bearer"}),
    "403": error_doc("the key lacks the scope this route needs"),
    "429": error_doc("the key is over its request rate", {"Retry-After": "seconds until a request is admitted"}),
    "503": error_doc("the API keys (or what the route reads) are unavailable", RETRY_AFTER),
}

_WEBHOOK_ANSWERS = {
    200: answer_doc(WebhookAnswer, "published, or nothing to publish"),
    400: error_doc("the body is not the provider's shape; the answer names the field when it can"),
    401: error_doc("the signature is missing, wrong, too old or already used"),
    413: TOO_LARGE,
    503: error_doc("the webhook is not configured, or the feedback stream is unavailable; the provider retries",
                RETRY_AFTER),
}
MAILGUN_WEBHOOK = {"openapi_extra": body_doc(MailgunWebhookBody), "responses": _WEBHOOK_ANSWERS}
SENDGRID_WEBHOOK = {
    "openapi_extra": {
        "parameters": [
            {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
            for name, text in (("X-Twilio-Email-Event-Webhook-Signature", "base64 ECDSA signature of timestamp + body"),
                               ("X-Twilio-Email-Event-Webhook-Timestamp", "seconds since the epoch"))
        ],
        "requestBody": {"required": True, "content": {JSON: {"schema": {
            "type": "array", "items": {"type": "object"}, "description": "SendGrid's events, signed as raw bytes"}}}},
    },
    "responses": _WEBHOOK_ANSWERS,
}

class RegistryResponse(JSONResponse):
    """Documents the registry's own media type; Confluent clients expect it."""

    media_type = REGISTRY_JSON


_REGISTRY_NOT_FOUND = answer_doc(RegistryError, "no such subject, version or schema id", REGISTRY_JSON)
REGISTRY_SUBJECTS = {"response_class": RegistryResponse, "responses": {200: {
    "description": "Mercury's subjects", "content": {REGISTRY_JSON: {"schema": {"type": "array",
                                                                                "items": {"type": "string"}}}}}}}
REGISTRY_SCHEMA_BY_ID = {"response_class": RegistryResponse, "responses": {
    200: answer_doc(SchemaText, "the schema", REGISTRY_JSON), 404: _REGISTRY_NOT_FOUND, 422: BAD_PARAMETER}}
REGISTRY_VERSIONS = {"response_class": RegistryResponse, "responses": {200: {
    "description": "the subject's versions", "content": {REGISTRY_JSON: {"schema": {"type": "array",
                                                                                    "items": {"type": "integer"}}}}},
    404: _REGISTRY_NOT_FOUND}}
REGISTRY_VERSION = {"response_class": RegistryResponse, "responses": {
    200: answer_doc(RegisteredSchema, "that version", REGISTRY_JSON), 404: _REGISTRY_NOT_FOUND}}
REGISTRY_REGISTER = {
    "response_class": RegistryResponse,
    "openapi_extra": body_doc(SchemaBody, REGISTRY_JSON),
    "responses": {
        200: answer_doc(RegisteredSchema, "the schema is one of Mercury's: its fixed id", REGISTRY_JSON),
        404: answer_doc(RegistryError, "the subject is not one of Mercury's topics", REGISTRY_JSON),
        400: answer_doc(RegistryError, "the body is not JSON", REGISTRY_JSON),
        409: answer_doc(RegistryError, "the schema is not compatible with Mercury's", REGISTRY_JSON),
        413: answer_doc(RegistryError, "the body is larger than any of Mercury's schemas", REGISTRY_JSON),
        422: answer_doc(RegistryError, "the body is not a valid schema", REGISTRY_JSON),
    },
}

# The provider registry and the configurations (operator) ---------------------------------------------------

ProviderType = Literal["mailgun", "sendgrid", "postmark", "smtp"]
SettingValue = Annotated[str | float, Field(description="text; a number is taken as its text")]
_SETTINGS = ("the type's settings by name (mailgun: base_url, domain; sendgrid and postmark: base_url; smtp: host, "
             "port, security, username, ca_file; every type: connect_timeout, read_timeout); those left out come "
             "from the environment")
_SECRETS = ("write-only secrets by name (mailgun, sendgrid: api_key; postmark: server_token; smtp: password), "
            "encrypted with MERCURY_SECRETS_KEY; never returned")


class ProviderBody(TypedDict):
    """A provider to add. Unknown fields are refused (422 naming the field)."""

    __pydantic_config__ = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"id": "mailgun-eu", "type": "mailgun", "settings": {"base_url": "https://api.eu.mailgun.net",
                                                             "domain": "mg.example.com"},
         "secrets": {"api_key": "key-..."}}]})
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
                             description="its name in events, breakers and rate limits")]
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


ConfigurationId = Literal["retry_ladder", "breakers", "provider_rate_limits"]
_VALUE = ('retry_ladder: {"delays_s": [seconds, ...]} with at most as many levels as there are retry topics; '
          'breakers: {"failures": n, "recovery_s": seconds}; provider_rate_limits: {"<provider>": sends per second}')


class ConfigurationBody(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"id": "breakers", "value": {"failures": 3, "recovery_s": 30}}]})
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
_CONTROL_MODELS = (ProviderBody, ProviderChange, ProviderAnswer, ProviderList, ConfigurationBody, ConfigurationChange,
                   ConfigurationAnswer, ConfigurationList)

_DOCUMENTED = (
    *_CONTROL_MODELS,
    MailBody, ClientEventBody, MailgunWebhookBody, SchemaBody, ErrorAnswer, RegistryError, Index, MailAccepted,
    StoredMail, MailPage, MailEvent, MailEvents, ProvidersAnswer, TimelineAnswer, QueueTimeAnswer,
    DeliveryTimeAnswer, FailureCausesAnswer, BreakersAnswer, FeedbackAnswer, UnfinishedAnswer, Trace, LagAnswer,
    WebhookAnswer, RegisteredSchema, SchemaText, KeyBody, ApiKeyAnswer, NewKey, KeyList,
)


def components(*models: type) -> dict[str, Any]:
    """Every model above, and `models`, and the models they use, as OpenAPI components (serialization mode: as
    sent)."""
    found: dict[str, Any] = {}
    for model in (*_DOCUMENTED, *models):
        schema = TypeAdapter(model).json_schema(ref_template=_COMPONENTS)
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def install(app: FastAPI, *models: type) -> None:
    """Serve the generated schema with the components the route entries refer to, `models` being those of route
    groups that keep their models beside their handlers; built once, on first use.

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
