"""Rules a mail must satisfy before anyone tries to send it, shared by the HTTP gateway and the dispatcher
(which sees records from outside producers that never passed the gateway).

Every text that ends up in a header line (subject, addresses, custom headers, tags, metadata, attachment
names) is refused when it holds a line break: a CR or LF there would let the sender add headers of its own.

Mail ids are unique per tenant by construction, without a lookup or any state: an id `<t>:<rest>` whose `<t>` is
shaped like a tenant is tenant t's alone, and an outside producer's mail of a tenant other than the default one
carries its tenant's prefix. The gateway's ids (32 hex characters) and the default tenant's carry no prefix, so
two tenants never name a mail alike: one would be dropped as the other's duplicate, and each would read the
other's events (events name only their mail).
"""
import dataclasses
import os
import re
from collections.abc import Mapping
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from schemas.events import now_ms
from schemas.model import DEFAULT_TENANT, HTTP_ORIGIN, TENANT_PATTERN, Attachment, Mail


def _limit(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


MAX_SUBJECT = _limit("MERCURY_MAX_SUBJECT_CHARS", 998)
MAX_BODY_CHARS = _limit("MERCURY_MAX_BODY_CHARS", 1_000_000)
MAX_RECIPIENTS = _limit("MERCURY_MAX_RECIPIENTS", 50)
MAX_ATTACHMENT_BYTES = _limit("MERCURY_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)
MAX_ATTACHMENTS = _limit("MERCURY_MAX_ATTACHMENTS", 100)
# The whole mail travels as one Kafka record, and its retry record and dead letter add a little to it (at most
# a few kilobytes of reason and position, and the record's framing): every byte a mail's fields hold counts
# here, and the default keeps all three under Kafka's default 1,000,000-byte record limit.
MAX_MAIL_BYTES = _limit("MERCURY_MAX_MAIL_BYTES", 900_000)
MAX_HEADERS = _limit("MERCURY_MAX_HEADERS", 20)
MAX_TAGS = _limit("MERCURY_MAX_TAGS", 10)
MAX_TAG_CHARS = _limit("MERCURY_MAX_TAG_CHARS", 128)
MAX_METADATA_KEYS = _limit("MERCURY_MAX_METADATA_KEYS", 20)
MAX_METADATA_KEY_CHARS = _limit("MERCURY_MAX_METADATA_KEY_CHARS", 64)
MAX_METADATA_VALUE_CHARS = _limit("MERCURY_MAX_METADATA_VALUE_CHARS", 1024)
MAX_SCHEDULE_DAYS = _limit("MERCURY_MAX_SCHEDULE_DAYS", 30)
MAX_ID = 128
# SendGrid refuses custom_args over 10,000 bytes in all; Mercury adds its own mail id to them.
MAX_METADATA_BYTES = 9_000
MAX_FILENAME_CHARS = 255
# RFC 6838: a type and a subtype of at most 127 characters each.
MAX_MEDIA_TYPE_CHARS = 255
# RFC 5322 caps a header line at 998 characters, name and ": " included.
MAX_HEADER_LINE = 998
# Metadata keys the adapters use to carry the mail id back in webhooks (v:mercury-id, custom_args.mercury_id).
RESERVED_METADATA_PREFIX = "mercury"
# SendGrid returns custom_args as top-level fields of its webhook events, beside its own fields: a key named
# like one of those would overwrite it.
RESERVED_METADATA_KEYS = frozenset({
    "email", "event", "timestamp", "sg_event_id", "sg_message_id", "smtp-id", "category", "type", "reason",
    "status", "response", "attempt", "url", "useragent", "ip", "tls", "cert_err", "asm_group_id",
    "marketing_campaign_id", "marketing_campaign_name", "pool", "send_at", "bounce_classification",
})
# Headers the providers write themselves from the mail's own fields, or that steer the provider.
RESERVED_HEADERS = frozenset({
    "from", "to", "cc", "bcc", "subject", "reply-to", "sender", "date", "message-id", "mime-version",
    "content-type", "content-transfer-encoding", "content-disposition", "return-path", "received",
    "dkim-signature", "x-sg-id", "x-sg-eid",
})
RESERVED_HEADER_PREFIXES = ("x-mailgun-", "x-sg-", "x-pm-", "x-mercury-")
_DAY_MS = 86_400_000
_BREAKS = re.compile(r"[\r\n\x00]")
# RFC 5322 field-name: printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
# RFC 2045 type/subtype, each a token.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_MEDIA_TYPE = re.compile(f"{_TOKEN}/{_TOKEN}")
# A tenant names a key's owner in reads and in ClickHouse filters: a short lowercase slug.
_TENANT = re.compile(TENANT_PATTERN)
# The gateway gave every tenant's mails ids of this shape before ids carried their tenant; mails of that time may
# still be on the retry ladder or waiting for their send_at.
_GATEWAY_ID = re.compile(r"[0-9a-f]{32}")
_ID_RULE = (f"mail ids are unique per tenant: an id '<tenant>:...' is that tenant's, and a Kafka producer's mail"
            f" of a tenant other than {DEFAULT_TENANT!r} has an id beginning with its tenant and ':'")


class InvalidMail(ValueError):
    """The mail can never be sent as it is; the message names the field and the problem."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ForeignMailId(InvalidMail):
    """The id lies outside its tenant's own ids: it may name another tenant's mail, so nothing recorded about this
    one may be filed under it."""


@lru_cache(maxsize=65536)
def _normalized(address: str) -> tuple[str, str]:
    """(normalized address, "") or ("", why it is invalid); cached because senders and recipients repeat
    and the syntax check is a large share of a request's CPU."""
    try:
        return validate_email(address, check_deliverability=False).normalized, ""
    except EmailNotValidError as err:
        return "", str(err)


def one_line(field: str, text: str) -> str:
    """Return `text` or raise InvalidMail when it holds a CR, LF or NUL (header injection)."""
    if _BREAKS.search(text):
        raise InvalidMail(field, "must not contain line breaks")
    return text


def check_address(field: str, address: str) -> str:
    """Return the normalized address or raise InvalidMail; never touches DNS."""
    one_line(field, address)
    normalized, problem = _normalized(address)
    if problem:
        raise InvalidMail(field, f"{address!r} is not a valid address ({problem})")
    return normalized


def check_mail(mail: Mail, now: int | None = None) -> Mail:
    """Validate every field; returns the mail with normalized addresses. `now` (ms) is when the mail is
    checked: send_at may lie at most MAX_SCHEDULE_DAYS after it, so a mistyped date cannot hold a mail for good."""
    if not mail.id or len(mail.id) > MAX_ID:
        raise InvalidMail("id", f"must be 1 to {MAX_ID} characters")
    if not _TENANT.fullmatch(mail.tenant):
        raise InvalidMail("tenant", "must be 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter"
                                    " or digit")
    check_mail_id(mail.id, mail.tenant, mail.origin)
    sender = check_address("sender", mail.sender)
    if not mail.recipients:
        raise InvalidMail("recipients", "at least one recipient is required")
    to, cc, bcc = _check_recipients({"recipients": mail.recipients, "cc": mail.cc, "bcc": mail.bcc})
    reply_to = check_address("reply_to", mail.reply_to) if mail.reply_to else ""
    if len(mail.subject) > MAX_SUBJECT:
        raise InvalidMail("subject", f"{len(mail.subject)} characters, at most {MAX_SUBJECT} allowed")
    one_line("subject", mail.subject)
    _check_bodies(mail)
    _check_attachments(mail.attachments)
    _check_headers(mail.headers)
    _check_tags(mail.tags)
    _check_metadata(mail.metadata)
    _check_size(mail)
    _check_send_at(mail.send_at, now_ms() if now is None else now)
    return dataclasses.replace(mail, sender=sender, recipients=to, cc=cc, bcc=bcc, reply_to=reply_to)


def own_mail_id(tenant: str, local: str) -> str:
    """`local` made one of `tenant`'s own ids: the default tenant's carry no prefix, any other's its own."""
    return local if tenant == DEFAULT_TENANT else f"{tenant}:{local}"


def check_mail_id(mail_id: str, tenant: str, origin: str) -> None:
    """Raise ForeignMailId unless `mail_id` is among `tenant`'s own ids (the module docstring says which); never
    blocks. The sink runs it too, so a refused record never becomes a stored mail of its tenant."""
    own = f"{tenant}:"
    owner, colon, _ = mail_id.partition(":")
    if colon and owner != tenant and _TENANT.fullmatch(owner):
        fix = f"; use {own!r}" if tenant != DEFAULT_TENANT else f", which no {DEFAULT_TENANT!r} tenant's mail takes"
        raise ForeignMailId("id", f"{mail_id!r} begins with the prefix of tenant {owner!r}{fix} ({_ID_RULE})")
    legacy = origin == HTTP_ORIGIN and _GATEWAY_ID.fullmatch(mail_id)
    if tenant != DEFAULT_TENANT and not mail_id.startswith(own) and not legacy:
        raise ForeignMailId("id", f"{mail_id!r} must begin with {own!r} ({_ID_RULE})")


def _check_recipients(lists: dict[str, tuple[str, ...]]) -> list[tuple[str, ...]]:
    """To, cc and bcc together: at most MAX_RECIPIENTS, each address once (SendGrid refuses a repeat)."""
    seen: set[str] = set()
    checked = []
    for field, addresses in lists.items():
        if len(seen) + len(addresses) > MAX_RECIPIENTS:
            total = sum(len(a) for a in lists.values())
            raise InvalidMail(field, f"{total} recipients in recipients, cc and bcc, at most {MAX_RECIPIENTS} allowed")
        normalized = tuple(check_address(field, address) for address in addresses)
        for address in normalized:
            if address.lower() in seen:
                raise InvalidMail(field, f"{address!r} is already a recipient of this mail")
            seen.add(address.lower())
        checked.append(normalized)
    return checked


def _check_bodies(mail: Mail) -> None:
    if not mail.content and not mail.html:
        raise InvalidMail("content", "a text body (content) or an HTML body (html) is required")
    for field, body in (("content", mail.content), ("html", mail.html)):
        if len(body) > MAX_BODY_CHARS:
            raise InvalidMail(field, f"{len(body)} characters, at most {MAX_BODY_CHARS} allowed")


def _check_attachments(attachments: tuple[Attachment, ...]) -> None:
    if len(attachments) > MAX_ATTACHMENTS:
        raise InvalidMail("attachments", f"{len(attachments)} attachments, at most {MAX_ATTACHMENTS} allowed")
    total = 0
    for i, attachment in enumerate(attachments):
        name = attachment.filename
        if not name or len(name) > MAX_FILENAME_CHARS:
            raise InvalidMail(f"attachments[{i}].filename", f"must be 1 to {MAX_FILENAME_CHARS} characters")
        one_line(f"attachments[{i}].filename", name)
        if "/" in name or "\\" in name:
            raise InvalidMail(f"attachments[{i}].filename", "must not contain path separators")
        if len(attachment.content_type) > MAX_MEDIA_TYPE_CHARS or not _MEDIA_TYPE.fullmatch(attachment.content_type):
            raise InvalidMail(f"attachments[{i}].content_type",
                              f"{attachment.content_type[:100]!r} is not a type/subtype media type")
        total += len(attachment.content)
        if total > MAX_ATTACHMENT_BYTES:
            raise InvalidMail("attachments", f"more than {MAX_ATTACHMENT_BYTES} bytes in all")


def _check_headers(headers: Mapping[str, str]) -> None:
    if len(headers) > MAX_HEADERS:
        raise InvalidMail("headers", f"{len(headers)} headers, at most {MAX_HEADERS} allowed")
    for name, value in headers.items():
        field = f"headers.{name}"
        one_line(field, name)
        if not _FIELD_NAME.fullmatch(name):
            raise InvalidMail(field, "a header name is printable ASCII without spaces or ':'")
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_HEADER_PREFIXES):
            raise InvalidMail(field, "is set by Mercury or the provider and cannot be given")
        one_line(field, value)
        if len(name) + 2 + len(value) > MAX_HEADER_LINE:
            raise InvalidMail(field, f"name and value longer than {MAX_HEADER_LINE - 2} characters")


def _check_tags(tags: tuple[str, ...]) -> None:
    if len(tags) > MAX_TAGS:
        raise InvalidMail("tags", f"{len(tags)} tags, at most {MAX_TAGS} allowed")
    for i, tag in enumerate(tags):
        one_line(f"tags[{i}]", tag)
        if not 0 < len(tag) <= MAX_TAG_CHARS or not (tag.isascii() and tag.isprintable()):
            raise InvalidMail(f"tags[{i}]", f"must be 1 to {MAX_TAG_CHARS} printable ASCII characters")


def _check_metadata(metadata: Mapping[str, str]) -> None:
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidMail("metadata", f"{len(metadata)} keys, at most {MAX_METADATA_KEYS} allowed")
    size = 0
    for key, value in metadata.items():
        field = f"metadata.{key}"
        one_line(field, key)
        if not 0 < len(key) <= MAX_METADATA_KEY_CHARS or not key.isprintable():
            raise InvalidMail(field, f"a key is 1 to {MAX_METADATA_KEY_CHARS} printable characters")
        if key.lower().startswith(RESERVED_METADATA_PREFIX):
            raise InvalidMail(field, f"keys starting with {RESERVED_METADATA_PREFIX!r} are Mercury's own")
        if key.lower() in RESERVED_METADATA_KEYS:
            raise InvalidMail(field, "is a field of the providers' webhook events")
        one_line(field, value)
        if len(value) > MAX_METADATA_VALUE_CHARS:
            raise InvalidMail(field, f"{len(value)} characters, at most {MAX_METADATA_VALUE_CHARS} allowed")
        size += len(key.encode()) + len(value.encode())
    if size > MAX_METADATA_BYTES:
        raise InvalidMail("metadata", f"{size} bytes of keys and values, at most {MAX_METADATA_BYTES} allowed")


def _check_size(mail: Mail) -> None:
    """The whole mail must fit one Kafka record with room for its retry record and dead letter: every field that
    holds text or bytes counts (the bulk is bodies and attachments, named when too big; the rest is bounded
    field by field but adds up)."""
    parts = {
        "content": len(mail.content.encode()),
        "html": len(mail.html.encode()),
        "attachments": sum(len(a.content) + len(a.filename.encode()) + len(a.content_type) for a in mail.attachments),
        "headers": sum(len(k.encode()) + len(v.encode()) for k, v in mail.headers.items()),
        "metadata": sum(len(k.encode()) + len(v.encode()) for k, v in mail.metadata.items()),
        "recipients": sum(len(a.encode()) for a in (*mail.recipients, *mail.cc, *mail.bcc)),
        "subject": len(mail.subject.encode()) + sum(len(t) for t in mail.tags),
    }
    if sum(parts.values()) > MAX_MAIL_BYTES:
        field = max(parts, key=parts.__getitem__)
        raise InvalidMail(field, f"the mail's fields exceed {MAX_MAIL_BYTES} bytes in all")


def _check_send_at(send_at: int, now: int) -> None:
    """A time in the past (or 0) means at once; only a time too far ahead is refused."""
    if send_at > now + MAX_SCHEDULE_DAYS * _DAY_MS:
        raise InvalidMail("send_at", f"more than {MAX_SCHEDULE_DAYS} days ahead")
