"""`POST /api/v1.0/mails/batch`: many mails in one request, each accepted or refused on its own.

High-volume senders pay one HTTP request per mail on the single route; here one request carries up to
MAX_MAILS mails, and every mail is treated exactly as the single route treats it (ingest.mails.acceptor): validated
by the same rules, published and acknowledged by the broker before it counts as accepted, recorded as a
`rejected` event when refused, checked under its own idempotency key. The answer holds one result per mail,
in order, and comes once the broker acknowledged every accepted mail (the mails are published concurrently).

The key's rate counts mails, not requests: the request takes one token as every request does, and each further
mail one more. Mails past what the key has left are not looked at and answer 429 each, so a client resends
exactly those after Retry-After.
"""
import asyncio
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ConfigDict, Field
from typing_extensions import NotRequired, TypedDict

from ingest import openapi
from ingest.api_root import API
from ingest.bodies import parse_json, read_limited
from ingest.keys.api_key import ApiKey
from ingest.keys.auth import SEND, KeyedRoute, RateLimited
from ingest.keys.limits import KeyLimits
from ingest.mails import openapi as docs
from ingest.mails.acceptor import REPLAYED_HEADER, Acceptor, Answer, Keyed, refusal
from ingest.mails.idempotency import KEY_RULE, MAX_KEY_CHARS, body_digest, is_key, mail_id_for
from ingest.mails.request_body import mail_from_fields, new_id
from ingest.responses import json_response
from schemas.kafka.producer import AsyncProducer
from schemas.model import Mail
from schemas.validation import InvalidMail

PATH = f"{API}/mails/batch"
MAX_MAILS = 1000
FIELD = "mails"
KEY_FIELD = "idempotency_key"


# The request and its answer --------------------------------------------------------------------------------

class BatchMail(docs.MailBody):
    """One mail of a batch: the fields of `POST /mails/`, and its own idempotency key."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    idempotency_key: NotRequired[Annotated[str, Field(pattern=f"^[\\x20-\\x7e]{{1,{MAX_KEY_CHARS}}}$", description=(
        "the mail's Idempotency-Key, as the header of `POST /mails/`: a retry with the same key and mail gets the "
        "first answer again (`replayed`) and creates no second mail; another mail under a key already used is "
        "refused (422). A key is the tenant's own, shared with `POST /mails/` (the same key stands for the same "
        "mail id), but a mail there is compared as its request body's bytes and here as its fields, so a key "
        "used on one route is refused on the other. Given once per batch."))]]


class BatchBody(TypedDict):
    """Up to 1,000 mails, each accepted or refused on its own; the whole request at most
    MERCURY_MAX_BATCH_BODY_BYTES (10,000,000 bytes by default)."""

    __pydantic_config__ = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"mails": [
        {"sender": "alice@example.com", "recipients": ["bob@example.com"], "subject": "Hello", "content": "Hi Bob",
         "idempotency_key": "welcome-bob"},
        {"sender": "alice@example.com", "recipients": "carol@example.com", "subject": "Hello", "content": "Hi Carol",
         "tags": ["welcome"]}]}]})
    mails: Annotated[list[BatchMail], Field(min_length=1, max_length=MAX_MAILS)]


class BatchMailAccepted(TypedDict):
    """The mail is on the broker: the fields of `POST /mails/`'s 202."""

    index: Annotated[int, Field(description="the mail's place in the request, from 0")]
    code: Annotated[Literal[202], Field(description="the status `POST /mails/` would have answered")]
    id: str
    status: Literal["accepted"]
    url: str
    send_at: NotRequired[Annotated[int, Field(description="ms since the epoch, when the mail was given one")]]
    replayed: NotRequired[Annotated[Literal[True], Field(
        description="the first answer to this idempotency key and mail again; nothing new was published")]]


class BatchMailRefused(TypedDict):
    """The mail was not accepted: the answer `POST /mails/` would have given, its field named inside the batch."""

    index: Annotated[int, Field(description="the mail's place in the request, from 0")]
    code: Annotated[int, Field(description=(
        "422: a field is wrong, or its idempotency key was used for another mail (recorded as a `rejected` event "
        "under `mail_id`); 429: the key had no tokens left for it, not looked at; 503: the broker did not "
        "acknowledge it, or its idempotency key cannot be checked now"))]
    error: Annotated[str, Field(description="what is wrong, naming the field as `mails[<index>].<field>`")]
    field: NotRequired[Annotated[str, Field(description="the field that is wrong, e.g. `mails[3].recipients`")]]
    mail_id: NotRequired[Annotated[str, Field(description=(
        "422: the id the rejection is recorded under; 503 with `accepted: unknown`: the id the mail may be "
        "queued under"))]]
    accepted: NotRequired[Annotated[bool | Literal["unknown"], Field(description=(
        "503 only: false when the mail never reached the broker, unknown when it may be queued"))]]


class BatchAnswer(TypedDict):
    mails: Annotated[list[BatchMailAccepted | BatchMailRefused], Field(description="one result per mail, in order")]


MODELS = (BatchBody, BatchAnswer)
_BATCH_OR_ERROR = {openapi.JSON: {"schema": {"anyOf": [
    {"$ref": f"#/components/schemas/{model.__name__}"} for model in (BatchAnswer, openapi.ErrorAnswer)]}}}
ENTRY: dict[str, Any] = {
    "summary": "Send up to 1,000 mails in one request",
    "description": (
        "Each mail is validated, published and answered on its own, in order, exactly as `POST /mails/` would "
        "answer it; one bad mail never refuses the others, and the answer comes once the broker acknowledged "
        "every accepted mail. **202** when every mail was accepted; **200** when at least one was not (read each "
        "result's `code`); **503** with `Retry-After` when none was accepted because the broker (or ClickHouse, "
        "for idempotency keys) is unavailable. The whole request is refused only when it is not a batch at all: "
        "400 (not a JSON object), 413 (over MERCURY_MAX_BATCH_BODY_BYTES, 10,000,000 bytes by default), 422 "
        "(`mails` missing, not a list, empty, or over 1,000 mails; an unknown field).\n\n"
        "**Rates count mails:** the request takes one of the key's tokens and each further mail one more. "
        "Mails past what the key has left answer 429 each (not looked at, not recorded) and the answer carries "
        "`Retry-After`: resend those. A key with no token left gets the usual 429 for the whole request."),
    "openapi_extra": openapi.body_doc(BatchBody),
    "responses": {
        202: openapi.answer_doc(BatchAnswer, "every mail is on the broker"),
        200: openapi.answer_doc(BatchAnswer, "some mails were not accepted; each result says why",
                                headers={"Retry-After": "when some were answered 429 or 503: seconds to wait"}),
        400: openapi.error_doc("the body is not a JSON object"),
        413: openapi.error_doc("the body is larger than MERCURY_MAX_BATCH_BODY_BYTES"),
        422: openapi.error_doc("`mails` is missing, not a list, empty or longer than 1,000, or a field is unknown"),
        503: {"description": "no mail was accepted: the broker, ClickHouse (for idempotency keys) or the API keys "
                             "are unavailable", "content": _BATCH_OR_ERROR,
              "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}},
    },
}


# The route -------------------------------------------------------------------------------------------------

def install(app: FastAPI, acceptor: Acceptor, max_body_bytes: int) -> None:
    """Add the batch route to `app`; `max_body_bytes` bounds a whole request."""

    async def create_mails(request: Request, api_key: ApiKey = SEND) -> Response:
        producer: AsyncProducer = request.app.state.producer
        body = b""
        try:
            body = await read_limited(request, max_body_bytes)
            items = _items(body)
        except InvalidMail as err:
            return (await acceptor.reject(producer, new_id(api_key.tenant), err, body, api_key.tenant)).response()
        limits: KeyLimits = request.app.state.key_limits
        taken, wait_s = limits.take(api_key, len(items) - 1)
        admitted = 1 + taken
        answers = await _answer_each(acceptor, producer, api_key.tenant, items[:admitted])
        if admitted < len(items):
            request.app.state.over_rate.refused(api_key, len(items) - admitted)
            limited = RateLimited(wait_s)
            answers += [refusal(429, limited.message, limited.headers, field=limited.field)] * (len(items) - admitted)
        return _response(answers)

    app.router.add_api_route(PATH, create_mails, methods=["POST"], status_code=202, route_class_override=KeyedRoute,
                             **ENTRY)


def _items(body: bytes) -> list[object]:
    """The request's mails as parsed JSON, not yet looked at; raises InvalidMail when it is not a batch."""
    data = parse_json(body)
    if unknown := set(data) - {FIELD}:
        raise InvalidMail(sorted(unknown)[0], "is not a known field")
    items = data.get(FIELD)
    if items is None:
        raise InvalidMail(FIELD, "is required")
    if not isinstance(items, list):
        raise InvalidMail(FIELD, "must be a list of mails")
    if not 1 <= len(items) <= MAX_MAILS:
        raise InvalidMail(FIELD, f"{len(items)} mails, 1 to {MAX_MAILS} allowed")
    return items


async def _answer_each(acceptor: Acceptor, producer: AsyncProducer, tenant: str,
                       items: Sequence[object]) -> list[Answer]:
    """Validate every item, then reject, accept and check keys all at once; the answers in the items' order."""
    plain: list[tuple[int, Mail]] = []
    keyed: list[tuple[int, Keyed]] = []
    refused: list[tuple[int, InvalidMail, str]] = []
    keys: dict[str, int] = {}
    for index, item in enumerate(items):
        rejection_id = new_id(tenant)
        try:
            fields, key = _fields(item, keys)
            mail = mail_from_fields(fields, rejection_id if key is None else mail_id_for(key, tenant), tenant)
        except InvalidMail as err:
            field = f"{FIELD}[{index}]" + (f".{err.field}" if err.field else "")
            refused.append((index, type(err)(field, err.problem), rejection_id))
            continue
        if key is None:
            plain.append((index, mail))
        else:
            keys[key] = index
            digest = body_digest(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))
            keyed.append((index, Keyed(key, mail, digest, orjson.dumps(item), rejection_id,
                                       f"{FIELD}[{index}].{KEY_FIELD}")))
    answers: list[Answer | None] = [None] * len(items)
    rejections, acceptances, keyed_answers = await asyncio.gather(
        asyncio.gather(*(acceptor.reject(producer, rejection_id, err, orjson.dumps(items[index]), tenant,
                                         index=index)
                         for index, err, rejection_id in refused)),
        acceptor.accept_all(producer, [(mail, {}) for _, mail in plain]),
        acceptor.accept_keyed(producer, [item for _, item in keyed]),
    )
    for (index, *_), answer in zip((*refused, *plain, *keyed), (*rejections, *acceptances, *keyed_answers)):
        answers[index] = answer
    return answers


def _fields(item: object, keys: dict[str, int]) -> tuple[dict, str | None]:
    """The item's mail fields and its idempotency key (None without one); raises InvalidMail naming the field
    within the item. `keys` holds the keys of the items before it, by key."""
    if not isinstance(item, dict):
        raise InvalidMail("", "must be a JSON object (a mail)")
    if KEY_FIELD not in item:
        return item, None
    fields = {name: value for name, value in item.items() if name != KEY_FIELD}
    key = item[KEY_FIELD]
    if not is_key(key):
        raise InvalidMail(KEY_FIELD, KEY_RULE)
    if key in keys:
        raise InvalidMail(KEY_FIELD, f"is the key of {FIELD}[{keys[key]}] too; a key stands for one mail")
    return fields, key


def _response(answers: list[Answer]) -> Response:
    """202 when every mail was accepted, 503 when none was and every one may be retried as it is, else 200;
    Retry-After the longest wait any mail was told."""
    statuses = {answer.status for answer in answers}
    status = 202 if statuses == {202} else 503 if statuses == {503} else 200
    waits = [int(wait) for answer in answers if (wait := answer.retry_after) is not None]
    headers = {"Retry-After": str(max(waits))} if waits else None
    return json_response({FIELD: [_item(index, answer) for index, answer in enumerate(answers)]}, status, headers)


def _item(index: int, answer: Answer) -> dict[str, object]:
    item: dict[str, object] = {"index": index, "code": answer.status, **answer.body}
    if answer.headers.get(REPLAYED_HEADER) == "true":
        item["replayed"] = True
    return item
