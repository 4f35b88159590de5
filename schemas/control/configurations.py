"""The dispatcher settings an operator can change at runtime (`mercury.Configuration` on mail.configurations).

Three ids, each a JSON object; the environment gives each one's value until the API sets one:

| id | value | environment |
|---|---|---|
| `retry_ladder` | `{"delays_s": [5, 30, 120, 600]}`: seconds per retry level | `MERCURY_RETRY_DELAYS` |
| `breakers` | `{"failures": 5, "recovery_s": 10}` | `MERCURY_BREAKER_FAILURES`, `MERCURY_BREAKER_RECOVERY_S` |
| `provider_rate_limits` | `{"mailgun": 50}`: sends per second per provider, for the fleet | `MERCURY_RATE_LIMITS` |

The retry ladder has at most as many levels as there are retry topics; the length of `MERCURY_RETRY_DELAYS`
is the number of topics.
"""
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from schemas import codec, registry
from schemas.control.provider_entries import ID
from schemas.control.provider_settings import InvalidSetting
from schemas.topics import retry_delays

SCHEMA = registry.CONFIGURATION
RETRY_LADDER, BREAKERS, RATE_LIMITS = "retry_ladder", "breakers", "provider_rate_limits"
IDS = (RETRY_LADDER, BREAKERS, RATE_LIMITS)
# A retry record's due time and a breaker's open time are Avro longs of ms; thirty days keeps them far from it.
MAX_SECONDS = 30 * 86_400
MAX_FAILURES = 1_000_000
MAX_RATE = 1_000_000.0


@dataclass(frozen=True)
class ConfigurationRecord:
    id: str
    value: dict[str, Any]
    removed: bool = False
    updated_at: int = 0

    def encode(self) -> bytes:
        return codec.encode(SCHEMA, {"id": self.id, "value": orjson.dumps(self.value).decode(),
                                     "removed": self.removed, "updated_at": self.updated_at})

    @classmethod
    def decode(cls, value: bytes) -> "ConfigurationRecord":
        """Raises codec.DecodeError for bytes that are not a configuration record (the value is not checked)."""
        name, record = codec.decode(value)
        if name != SCHEMA:
            raise codec.DecodeError(f"a {name} record on the configurations topic")
        try:
            parsed = orjson.loads(record["value"])
        except orjson.JSONDecodeError as err:
            raise codec.DecodeError(f"configuration {record['id']!r}: value is not JSON ({err})") from err
        return cls(record["id"], parsed, record["removed"], record["updated_at"])


def check_value(config_id: str, value: object, levels: int) -> dict[str, Any]:
    """The value in its normal form; raises InvalidSetting naming the field (`value.delays_s[2]`).

    `levels` is the number of retry topics (the environment's ladder length): a ladder may not be longer."""
    if config_id not in IDS:
        raise InvalidSetting("id", f"{config_id!r} is not one of {', '.join(IDS)}")
    if not isinstance(value, dict):
        raise InvalidSetting("value", "must be a JSON object")
    if config_id == RETRY_LADDER:
        return {"delays_s": _ladder(value, levels)}
    if config_id == BREAKERS:
        _only(value, ("failures", "recovery_s"))
        return {"failures": _integer("value.failures", value.get("failures"), 1, MAX_FAILURES),
                "recovery_s": _seconds("value.recovery_s", value.get("recovery_s"))}
    rates = {}
    for provider, rate in value.items():
        if not ID.match(provider):
            raise InvalidSetting(f"value.{provider}", "not a provider id")
        rates[provider] = _number(f"value.{provider}", rate, MAX_RATE)
    return rates


def _ladder(value: dict, levels: int) -> list[float]:
    _only(value, ("delays_s",))
    delays = value.get("delays_s")
    if not isinstance(delays, list) or not 1 <= len(delays) <= levels:
        raise InvalidSetting("value.delays_s", f"a list of 1 to {levels} delays: one per retry topic at most")
    return [_seconds(f"value.delays_s[{n}]", delay) for n, delay in enumerate(delays)]


def _only(value: dict, fields: tuple[str, ...]) -> None:
    for name in value:
        if name not in fields:
            raise InvalidSetting(f"value.{name}", f"unknown field (expected {', '.join(fields)})")


def _number(field: str, raw: object, maximum: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not (0 < raw <= maximum and math.isfinite(raw)):
        raise InvalidSetting(field, f"required, a positive number at most {maximum:g}")
    return float(raw)


def _seconds(field: str, raw: object) -> float:
    return _number(field, raw, MAX_SECONDS)


def _integer(field: str, raw: object, minimum: int, maximum: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not minimum <= raw <= maximum:
        raise InvalidSetting(field, f"required, a whole number from {minimum} to {maximum}")
    return raw


def parse_rates(raw: str) -> dict[str, float]:
    """`mailgun=50,sendgrid=100` → sends per second per provider; raises ValueError naming the bad part."""
    rates = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, _, value = part.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = 0.0
        if not name.strip() or not (0 < rate <= MAX_RATE and math.isfinite(rate)):
            raise ValueError(f"MERCURY_RATE_LIMITS: {part!r} is not <provider>=<sends per second>")
        rates[name.strip()] = rate
    return rates


def environment_values(env: Mapping[str, str] = os.environ) -> dict[str, dict[str, Any]]:
    """Each configuration's value from the environment; raises ValueError naming the variable."""
    try:
        failures = int(env.get("MERCURY_BREAKER_FAILURES", "5"))
        recovery = float(env.get("MERCURY_BREAKER_RECOVERY_S", "10"))
    except ValueError:
        failures, recovery = 0, 0.0
    if not 1 <= failures <= MAX_FAILURES or not (0 < recovery <= MAX_SECONDS):
        raise ValueError("MERCURY_BREAKER_FAILURES must be >= 1 and MERCURY_BREAKER_RECOVERY_S > 0")
    return {
        RETRY_LADDER: {"delays_s": retry_delays(env)},
        BREAKERS: {"failures": failures, "recovery_s": recovery},
        RATE_LIMITS: parse_rates(env.get("MERCURY_RATE_LIMITS", "")),
    }


def retry_levels(env: Mapping[str, str] = os.environ) -> int:
    """How many retry topics (and agents) there are: the environment's ladder length, fixed at deploy time."""
    return len(retry_delays(env))
