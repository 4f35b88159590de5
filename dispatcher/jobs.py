"""What the dispatcher works on: a decoded mail plus the dispatch state that travelled with it."""
import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from schemas import codec, registry, topics
from schemas.model import Mail

REQUEST_SCHEMA = registry.MAIL_REQUEST
RETRY_SCHEMA = registry.RETRY_RECORD
# A reason travels with a retry record and a dead letter: bounded, so a valid mail always fits both.
MAX_REASON_CHARS = 2000
# When a copy of a mail was written says nothing about what the mail says.
_WRITTEN_WHEN = frozenset({"created_at", "replayed_at"})
_EMPTY = (None, "", 0, [], {})


@dataclass(frozen=True)
class Source:
    """Where a record came from, kept so a dead letter can point at it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass
class Job:
    mail: Mail
    source: Source
    level: int = 0
    due_at: int = 0
    excluded: set[str] = field(default_factory=set)

    @property
    def first_attempt(self) -> bool:
        """Not yet on the retry ladder (straight from the request topic or a schedule topic)."""
        return not self.source.topic.startswith(topics.RETRY_PREFIX)

    @cached_property
    def digest(self) -> str:
        """What the mail says, hashed: every field but when it was written and replayed, so a re-delivery, a
        retry and a replay share it, and another body sent under the same id (a reused Idempotency-Key) does not."""
        return mail_digest(self.mail)

    def retry_record(self, level: int, due_at: int, last_error: str) -> bytes:
        return codec.encode(RETRY_SCHEMA, {
            "mail": self.mail.to_record(),
            "level": level,
            "due_at": due_at,
            "excluded": sorted(self.excluded),
            "last_error": last_error[:MAX_REASON_CHARS],
        })


def mail_digest(mail: Mail) -> str:
    """Over the fields that hold something, by name, not over the wire encoding: a field a later schema adds
    (left at its default) or a new encoding leaves a mail's digest as it was."""
    said = sorted((name, repr(value)) for name, value in mail.to_record().items()
                  if name not in _WRITTEN_WHEN and value not in _EMPTY)
    return hashlib.sha256(repr(said).encode()).hexdigest()[:32]


def job_from_record(schema_name: str, record: dict, source: Source) -> Job:
    """Build a job; raises codec.DecodeError when the record does not belong on the topic it came from.

    A mail on a schedule topic is due once it has waited that topic's delay since it was written there."""
    if schema_name == REQUEST_SCHEMA and source.topic == topics.REQUESTS:
        return Job(Mail.from_record(record), source)
    if schema_name == REQUEST_SCHEMA and source.topic.startswith(topics.SCHEDULE_PREFIX):
        due_at = source.timestamp_ms + topics.schedule_delay_s(source.topic) * 1000
        return Job(Mail.from_record(record), source, due_at=due_at)
    if schema_name == RETRY_SCHEMA and source.topic.startswith(topics.RETRY_PREFIX):
        return Job(
            Mail.from_record(record["mail"]), source, level=record["level"],
            due_at=record["due_at"], excluded=set(record["excluded"]),
        )
    raise codec.DecodeError(f"{schema_name} records do not belong on {source.topic}")
