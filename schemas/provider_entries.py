"""The provider registry's records (`mercury.ProviderEntry` on mail.providers) and what an entry amounts to.

An entry overrides the environment's provider of the same id, or adds one under a new id. Its settings start
from the environment's settings of its type (the variables `MERCURY_PROVIDERS` providers read, defaults
filled in), and what the entry sets wins. Each record carries the entry's whole state, so a reader needs only
the latest record per id.
"""
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas import codec
from schemas.provider_settings import (API, InvalidSetting, Sourced, Value, check_names, from_environment, parse,
                                       secret_names)

SCHEMA = "mercury.ProviderEntry"
ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Stands in for a secret that is stored but cannot be read here (the gateway without a key): it was checked
# when it was written, and no other setting's check depends on a secret's value.
STORED = "stored"


@dataclass(frozen=True)
class ProviderEntry:
    id: str
    type: str
    enabled: bool = True
    settings: dict[str, str] = field(default_factory=dict)
    secret_names: tuple[str, ...] = ()
    secrets: bytes = field(default=b"", repr=False)
    removed: bool = False
    updated_at: int = 0

    def encode(self) -> bytes:
        return codec.encode(SCHEMA, {
            "id": self.id, "type": self.type, "enabled": self.enabled, "settings": self.settings,
            "secret_names": sorted(self.secret_names), "secrets": self.secrets, "removed": self.removed,
            "updated_at": self.updated_at,
        })

    @classmethod
    def decode(cls, value: bytes) -> "ProviderEntry":
        """Raises codec.DecodeError for bytes that are not a provider entry."""
        name, record = codec.decode(value)
        if name != SCHEMA:
            raise codec.DecodeError(f"a {name} record on the provider registry")
        return cls(record["id"], record["type"], record["enabled"], dict(record["settings"]),
                   tuple(record["secret_names"]), record["secrets"], record["removed"], record["updated_at"])


def check_id(value: object) -> str:
    """Raises InvalidSetting('id', ...) unless the value can name a provider in events, metrics and URLs."""
    if not isinstance(value, str) or not ID.match(value):
        raise InvalidSetting("id", "1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit")
    return value


def effective(provider_type: str, env: Mapping[str, str], settings: Mapping[str, str],
              secrets: Mapping[str, str]) -> dict[str, Sourced]:
    """Every setting of the type: the entry's own (settings and secrets in clear) over the environment's."""
    values = from_environment(provider_type, env)
    values.update({name: Sourced(value, API) for name, value in {**settings, **secrets}.items()})
    return values


def check_entry(entry: ProviderEntry, env: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, Value]:
    """The typed settings the entry gives its adapter; raises InvalidSetting naming the first bad field.

    `secrets` are the entry's secrets in clear (or STORED stand-ins where they cannot be read)."""
    check_id(entry.id)
    check_names(entry.type, entry.settings, secrets)
    if set(secrets) != set(entry.secret_names):
        raise InvalidSetting("secrets", "the stored secrets do not match the names the entry lists")
    return parse(entry.type, effective(entry.type, env, entry.settings, secrets))


def stand_ins(entry: ProviderEntry) -> dict[str, str]:
    """Placeholders for the entry's stored secrets, for checks that do not need their values."""
    return {name: STORED for name in entry.secret_names if name in secret_names(entry.type)}
