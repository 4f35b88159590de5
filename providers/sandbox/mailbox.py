"""What one emulated provider accepted, in memory only: the hot path never touches the disk."""
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Received:
    """A send request the emulator accepted, reduced to what every provider has in common."""

    sender: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    custom: dict[str, str] = field(default_factory=dict)


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
                "received_at": int(time.time() * 1000),
            }
        )

    def messages(self) -> list[dict[str, Any]]:
        return list(self._messages)

    def clear(self) -> None:
        self._messages.clear()
        self.received = 0
