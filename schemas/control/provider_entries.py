"""The provider registry's records (`mercury.ProviderEntry` on mail.providers) and what an entry amounts to.

An entry overrides the environment's provider of the same id, or adds one under a new id. Its settings start
from the environment's settings of its type (the variables `MERCURY_PROVIDERS` providers read, defaults
filled in), and what the entry sets wins. Each record carries the entry's whole state, so a reader needs only
the latest record per id.

A secret is bound to the origin it was given for (`provider_settings.origin`): the environment's secret to
the environment's base URL or SMTP host and port, a stored secret to the location the entry had when it was
stored, written into the entry (`pinned`) so that no later environment moves it. Whoever sends a secret to
another origin must give it again.
"""
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas import codec, registry
from schemas.control.provider_settings import (
    API,
    InvalidSetting,
    Sourced,
    Value,
    check_names,
    from_environment,
    locations,
    origin,
    parse,
    secret_names,
)

SCHEMA = registry.PROVIDER_ENTRY
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
    """The typed settings the entry gives its adapter; raises InvalidSetting naming the first bad field, or the
    location setting that would send a secret of the environment to another origin.

    `secrets` are the entry's secrets in clear (or STORED stand-ins where they cannot be read)."""
    check_id(entry.id)
    check_names(entry.type, entry.settings, secrets)
    if set(secrets) != set(entry.secret_names):
        raise InvalidSetting("secrets", "the stored secrets do not match the names the entry lists")
    values = effective(entry.type, env, entry.settings, secrets)
    typed = parse(entry.type, values)
    if environments := [name for name in secret_names(entry.type) if name not in secrets]:
        check_bound(entry.type, values, origin(entry.type, from_environment(entry.type, env)), environments)
    return typed


def check_bound(provider_type: str, values: Mapping[str, Sourced], bound: Mapping[str, str],
                kept: list[str]) -> None:
    """Raises InvalidSetting naming the first location setting of `values` whose origin is not `bound`, the
    origin the `kept` secrets were given for: a secret goes to a new host only when it is given again."""
    for name, where in origin(provider_type, values).items():
        if where != bound.get(name):
            again = " and ".join(f"secrets.{secret}" for secret in kept)
            raise InvalidSetting(f"settings.{name}", f"changing the host requires giving {again} again "
                                                     f"(given for {bound.get(name)})")


def pinned(provider_type: str, env: Mapping[str, str], settings: Mapping[str, str],
           stored: bool) -> dict[str, str]:
    """The entry's settings, with its location settings written out from the environment where it sets none
    when it stores a secret: the secret then stays with the origin it was given for."""
    if not stored:
        return dict(settings)
    defaults = from_environment(provider_type, env)
    return {**{name: defaults[name].value for name in locations(provider_type)}, **settings}


def stand_ins(entry: ProviderEntry) -> dict[str, str]:
    """Placeholders for the entry's stored secrets, for checks that do not need their values."""
    return {name: STORED for name in entry.secret_names if name in secret_names(entry.type)}
