"""What `/openapi.json` says about the mail routes (ingest.mails.routes): the mail and event bodies they read
themselves, and each answer they give. The batch route keeps its own beside its handler (ingest.mails.batch)."""
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field
from typing_extensions import NotRequired, TypedDict

from ingest.mails.idempotency import MAX_KEY_CHARS
from ingest.openapi import (
    BAD_PARAMETER,
    JSON,
    NOT_FOUND,
    RETRY_AFTER,
    STORE_DOWN,
    TOO_LARGE,
    answer_doc,
    body_doc,
    error_doc,
)

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


# Answers ---------------------------------------------------------------------------------------------------

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
    status: Annotated[str, Field(description=(
        "the latest event, or queued; once a provider reported on the send, what its reports say: complained (a "
        "recipient marked it as spam), bounced (a recipient's server refused it, see bounce), or delivered (every "
        "recipient reported on has it: delivered, opened, clicked or unsubscribed)"))]
    bounce: NotRequired[Annotated[Literal["hard", "soft"], Field(description=(
        "with status bounced: hard when an address refused it for good, soft when a server refused it for now and "
        "nothing since showed it arrived"))]]
    url: str
    events_url: str


class RejectedMail(TypedDict):
    """A request refused under this id (the `mail_id` of its 422): it never became a mail."""

    id: str
    status: Literal["rejected"]
    reason: Annotated[str | None, Field(description="why it was refused, as the 422 said")]
    field: Annotated[str | None, Field(description="the field refused; null when the refusal named none")]
    created_at: Annotated[int, Field(description="when it was refused, ms since the epoch")]
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


MODELS = (MailBody, ClientEventBody, MailAccepted, StoredMail, RejectedMail, MailPage, MailEvent, MailEvents)


# Route entries ---------------------------------------------------------------------------------------------

CREATE_MAIL = {
    "openapi_extra": {**body_doc(MailBody), "parameters": [{
        "name": "Idempotency-Key", "in": "header", "required": False,
        "description": "a retry with the same key and body gets the first answer again and creates no second mail",
        "schema": {"type": "string", "pattern": f"^[\\x20-\\x7e]{{1,{MAX_KEY_CHARS}}}$"}}]},
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
GET_MAIL = {"responses": {200: {"description": "the mail with its current status, or the request refused under the id",
                                "content": {JSON: {"schema": {"anyOf": [
                                    {"$ref": f"#/components/schemas/{model.__name__}"}
                                    for model in (StoredMail, RejectedMail)]}}}},
                          404: NOT_FOUND, 422: BAD_PARAMETER, 503: STORE_DOWN}}
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
