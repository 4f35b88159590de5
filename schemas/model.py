"""The mail as every component sees it once decoded."""
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mail:
    id: str
    sender: str
    recipients: tuple[str, ...]
    subject: str
    content: str
    created_at: int
    origin: str = "kafka"
    send_at: int = 0
    replayed_at: int = 0

    @classmethod
    def from_record(cls, record: dict) -> "Mail":
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
        }
