"""What one emulated provider accepted, in memory only: the hot path never touches the disk."""
import hashlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """An attachment as received: kept as its size and digest, so a long run holds no file contents."""

    filename: str
    content_type: str
    size: int
    sha256: str

    @classmethod
    def of(cls, filename: str, content_type: str, data: bytes) -> "ReceivedFile":
        return cls(filename, content_type, len(data), hashlib.sha256(data).hexdigest())


@dataclass(frozen=True, slots=True)
class Received:
    """A send request the emulator accepted, in one shape for every provider so tests compare them alike."""

    sender: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    custom: dict[str, str] = field(default_factory=dict)
    html: str = ""
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    attachments: tuple[ReceivedFile, ...] = ()
    tags: tuple[str, ...] = ()


class Mailbox:
    """Newest last; bounded so that a long benchmark cannot exhaust memory (`received` keeps the true count)."""

    def __init__(self, keep: int) -> None:
        self._messages: deque[dict[str, Any]] = deque(maxlen=keep)
        self.received = 0

    def add(self, message_id: str, mail: Received) -> None:
        self.received += 1
        self._messages.append(
            {
                "id": message_id,
                "sender": mail.sender,
                "recipients": list(mail.recipients),
                "subject": mail.subject,
                "text": mail.text,
                "custom": mail.custom,
                "html": mail.html,
                "cc": list(mail.cc),
                "bcc": list(mail.bcc),
                "reply_to": mail.reply_to,
                "headers": mail.headers,
                "attachments": [
                    {"filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256}
                    for a in mail.attachments
                ],
                "tags": list(mail.tags),
                "received_at": int(time.time() * 1000),
            }
        )

    def messages(self) -> list[dict[str, Any]]:
        return list(self._messages)

    def clear(self) -> None:
        self._messages.clear()
        self.received = 0
