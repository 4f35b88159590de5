"""The mail as every component sees it once decoded."""
from collections.abc import Mapping
from dataclasses import dataclass, field

# A mail without a tenant (an older record, an outside producer that names none) belongs to this one.
DEFAULT_TENANT = "default"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# The origin of a mail the HTTP gateway made (its id too); any other origin is an outside producer's.
HTTP_ORIGIN = "http"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a mail; `content` holds the raw bytes (adapters encode them as their API wants)."""

    filename: str
    content_type: str
    content: bytes

    @classmethod
    def from_record(cls, record: dict) -> "Attachment":
        return cls(record["filename"], record["content_type"], record["content"])

    def to_record(self) -> dict:
        return {"filename": self.filename, "content_type": self.content_type, "content": self.content}


@dataclass(frozen=True, slots=True)
class Mail:
    """`content` is the plain-text body and `html` the HTML one; a mail carries at least one of them.
    `recipients` are the To addresses."""

    id: str
    sender: str
    recipients: tuple[str, ...]
    subject: str
    content: str
    created_at: int
    origin: str = "kafka"
    send_at: int = 0
    replayed_at: int = 0
    html: str = ""
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    tenant: str = DEFAULT_TENANT

    @classmethod
    def from_record(cls, record: dict) -> "Mail":
        """A decoded MailRequest; fields an older producer's record lacks take the schema's defaults."""
        return cls(
            id=record["id"],
            sender=record["sender"],
            recipients=tuple(record["recipients"]),
            subject=record["subject"],
            content=record["content"],
            created_at=record["created_at"],
            origin=record.get("origin", "kafka"),
            send_at=record.get("send_at", 0),
            replayed_at=record.get("replayed_at", 0),
            html=record.get("html", ""),
            cc=tuple(record.get("cc", ())),
            bcc=tuple(record.get("bcc", ())),
            reply_to=record.get("reply_to", ""),
            headers=dict(record.get("headers", {})),
            attachments=tuple(Attachment.from_record(a) for a in record.get("attachments", ())),
            tags=tuple(record.get("tags", ())),
            metadata=dict(record.get("metadata", {})),
            tenant=record.get("tenant", DEFAULT_TENANT),
        )

    def to_record(self) -> dict:
        return {
            "id": self.id,
            "sender": self.sender,
            "recipients": list(self.recipients),
            "subject": self.subject,
            "content": self.content,
            "created_at": self.created_at,
            "origin": self.origin,
            "send_at": self.send_at,
            "replayed_at": self.replayed_at,
            "html": self.html,
            "cc": list(self.cc),
            "bcc": list(self.bcc),
            "reply_to": self.reply_to,
            "headers": dict(self.headers),
            "attachments": [attachment.to_record() for attachment in self.attachments],
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
            "tenant": self.tenant,
        }
