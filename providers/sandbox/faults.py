"""Fault settings for one emulated provider, as read from and shown by the fault endpoints."""
import random
from dataclasses import asdict, dataclass, fields
from typing import Any


class FaultsInvalid(ValueError):
    """A fault document the sandbox will not apply; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class Faults:
    error_rate: float = 0.0
    status: int = 503
    latency_ms: float = 0.0
    timeout: bool = False
    down: bool = False
    reject_recipients: tuple[str, ...] = ()
    retry_after: float | None = None
    # A provider-specific code sent with an injected error where the API has one (Postmark's ErrorCode).
    error_code: int | None = None

    @classmethod
    def from_json(cls, document: Any) -> "Faults":
        """Validate a PUT body; keys left out keep their defaults (a PUT replaces every setting)."""
        if not isinstance(document, dict):
            raise FaultsInvalid("faults must be a JSON object")
        unknown = set(document) - {field.name for field in fields(cls)}
        if unknown:
            raise FaultsInvalid(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        rejects = document.get("reject_recipients", [])
        if not isinstance(rejects, list):
            raise FaultsInvalid("reject_recipients must be a list of non-empty strings")
        faults = cls(**{**document, "reject_recipients": tuple(rejects)})
        faults._check()
        return faults

    def _check(self) -> None:
        def number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        if not (number(self.error_rate) and 0.0 <= self.error_rate <= 1.0):
            raise FaultsInvalid("error_rate must be a number from 0.0 to 1.0")
        if not (isinstance(self.status, int) and not isinstance(self.status, bool) and 400 <= self.status <= 599):
            raise FaultsInvalid("status must be an HTTP error status, 400 to 599")
        if not (number(self.latency_ms) and self.latency_ms >= 0):
            raise FaultsInvalid("latency_ms must be a number >= 0")
        if not (isinstance(self.timeout, bool) and isinstance(self.down, bool)):
            raise FaultsInvalid("timeout and down must be true or false")
        if not all(isinstance(part, str) and part for part in self.reject_recipients):
            raise FaultsInvalid("reject_recipients must be a list of non-empty strings")
        if self.retry_after is not None and not (number(self.retry_after) and self.retry_after >= 0):
            raise FaultsInvalid("retry_after must be null or a number of seconds >= 0")
        if self.error_code is not None and not (
            isinstance(self.error_code, int) and not isinstance(self.error_code, bool) and self.error_code >= 0
        ):
            raise FaultsInvalid("error_code must be null or an integer >= 0")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "reject_recipients": list(self.reject_recipients)}

    def fails_now(self) -> bool:
        """Draw whether this request gets the injected error status."""
        return self.error_rate > 0.0 and random.random() < self.error_rate

    def rejects(self, address: str) -> bool:
        return any(part in address for part in self.reject_recipients)
