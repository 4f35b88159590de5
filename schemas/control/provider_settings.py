"""Each provider type's settings, as data: name, the environment variables that set it, its default, its kind
and whether it is a secret.

One table serves everyone who reads provider settings: `providers.config` builds adapters from it (from the
environment or from a registry entry), the dispatcher checks registry entries with it, and the gateway checks
what an operator writes and shows effective values without importing any adapter.
"""
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

ENVIRONMENT, DEFAULT, API = "environment", "default", "api"
# Hosts a plain-text connection (http, SMTP without TLS) may go to: nothing leaves the machine.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
Security = Literal["starttls", "tls", "none"]
SECURITY_MODES: tuple[Security, ...] = get_args(Security)
MAX_TIMEOUT_S = 600.0
MAX_VALUE_CHARS = 4096
# A base URL in the one plain form every URL parser reads alike: a host name (ASCII; IDNs in punycode) or a
# bracketed IPv6 literal, an optional port, a path. No user info, backslash, query or fragment: those are where
# parsers disagree (`https://evil\\@api.mailgun.net` is api.mailgun.net to one and evil to another), and the
# secret is bound to the host this check reads.
_URL = re.compile(r"(?P<scheme>https?)://(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.?|\[[0-9A-Fa-f:.]+\])"
                  r"(?::(?P<port>[0-9]{1,5}))?(?P<path>/[^\s\\?#%]*)?")
# The kinds of setting that say where a provider is reached, and so where its secrets are sent.
LOCATION_KINDS = ("url", "host", "port")


class InvalidSetting(ValueError):
    """A setting that cannot be used; `field` names it the way the reader wrote it (a variable or a field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Setting:
    name: str
    # Read in this order; the first one set wins.
    variables: tuple[str, ...]
    default: str
    kind: str
    secret: bool = False


def _timeouts(read_variables: tuple[str, ...] = ("MERCURY_PROVIDER_READ_TIMEOUT",)) -> tuple[Setting, ...]:
    return (Setting("connect_timeout", ("MERCURY_PROVIDER_CONNECT_TIMEOUT",), "2", "seconds"),
            Setting("read_timeout", read_variables, "10", "seconds"))


TYPES: dict[str, tuple[Setting, ...]] = {
    "mailgun": (
        Setting("base_url", ("MAILGUN_BASE_URL",), "http://127.0.0.1:8025", "url"),
        Setting("domain", ("MAILGUN_DOMAIN",), "sandbox.mercury.local", "domain"),
        Setting("api_key", ("MAILGUN_API_KEY",), "sandbox-key", "key", secret=True),
        *_timeouts(),
    ),
    "sendgrid": (
        Setting("base_url", ("SENDGRID_BASE_URL",), "http://127.0.0.1:8026", "url"),
        Setting("api_key", ("SENDGRID_API_KEY",), "sandbox-key", "key", secret=True),
        *_timeouts(),
    ),
    "postmark": (
        Setting("base_url", ("POSTMARK_BASE_URL",), "http://127.0.0.1:8027", "url"),
        Setting("server_token", ("POSTMARK_SERVER_TOKEN",), "sandbox-key", "key", secret=True),
        *_timeouts(),
    ),
    "smtp": (
        Setting("host", ("SMTP_HOST",), "127.0.0.1", "host"),
        Setting("port", ("SMTP_PORT",), "8028", "port"),
        # Empty: plain SMTP to a loopback host, STARTTLS to any other.
        Setting("security", ("SMTP_SECURITY",), "", "security"),
        Setting("username", ("SMTP_USERNAME",), "sandbox", "text"),
        Setting("password", ("SMTP_PASSWORD",), "sandbox-key", "text", secret=True),
        Setting("ca_file", ("SMTP_CA_FILE",), "", "text"),
        # A relay may scan the mail before its final reply: SMTP_TIMEOUT bounds the whole conversation.
        *_timeouts(("SMTP_TIMEOUT", "MERCURY_PROVIDER_READ_TIMEOUT")),
    ),
}

Value = str | int | float


@dataclass(frozen=True)
class Sourced:
    """A raw setting and where it came from: `api`, `environment` (then `variable` names it) or `default`."""

    value: str
    source: str
    variable: str = ""


def settings_of(provider_type: str) -> tuple[Setting, ...]:
    """Raises InvalidSetting('type', ...) for a type Mercury has no adapter for."""
    if provider_type not in TYPES:
        raise InvalidSetting("type", f"{provider_type!r} is not one of {', '.join(TYPES)}")
    return TYPES[provider_type]


def environment_providers(env: Mapping[str, str]) -> list[str]:
    """MERCURY_PROVIDERS, in order: each name is also its type; raises InvalidSetting for an empty, unknown or
    repeated one."""
    names = [name.strip().lower() for name in env.get("MERCURY_PROVIDERS", "mailgun,sendgrid").split(",")]
    names = [name for name in names if name]
    if not names:
        raise InvalidSetting("MERCURY_PROVIDERS", "names no provider")
    if unknown := [name for name in names if name not in TYPES]:
        raise InvalidSetting("MERCURY_PROVIDERS",
                             f"unknown provider(s) {', '.join(unknown)}; known: {', '.join(TYPES)}")
    if len(set(names)) != len(names):
        raise InvalidSetting("MERCURY_PROVIDERS", f"lists a provider twice: {','.join(names)}")
    return names


def secret_names(provider_type: str) -> list[str]:
    return [s.name for s in settings_of(provider_type) if s.secret]


def from_environment(provider_type: str, env: Mapping[str, str]) -> dict[str, Sourced]:
    """Every setting of the type as the environment gives it, defaults filled in."""
    found = {}
    for setting in settings_of(provider_type):
        variable = next((v for v in setting.variables if v in env), "")
        found[setting.name] = (Sourced(env[variable], ENVIRONMENT, variable) if variable
                               else Sourced(setting.default, DEFAULT))
    return found


def label(setting: Setting, sourced: Sourced) -> str:
    """How an error names a setting: the variable it was read from, `settings.<name>` or `secrets.<name>`."""
    if sourced.source == ENVIRONMENT:
        return sourced.variable
    return f"{'secrets' if setting.secret else 'settings'}.{setting.name}"


def check_names(provider_type: str, settings: Mapping[str, object], secrets: Mapping[str, object]) -> None:
    """Refuse a name the type does not have, or a secret given as a setting (and the reverse), so a misspelt
    setting never passes silently and a secret never travels in clear."""
    known = settings_of(provider_type)
    for group, names, wanted in (("settings", settings, False), ("secrets", secrets, True)):
        allowed = sorted(s.name for s in known if s.secret == wanted)
        for name in names:
            if name not in allowed:
                raise InvalidSetting(f"{group}.{name}", f"not one of {provider_type}'s {group} ({', '.join(allowed)})")


def parse(provider_type: str, values: Mapping[str, Sourced]) -> dict[str, Value]:
    """The typed settings an adapter is built with; raises InvalidSetting naming the first bad one.

    `values` holds every setting of the type (see `from_environment`)."""
    settings = settings_of(provider_type)
    typed = {s.name: _PARSERS[s.kind](label(s, values[s.name]), values[s.name].value) for s in settings}
    if provider_type == "smtp":
        _check_smtp(typed, values, settings)
    return typed


def locations(provider_type: str) -> list[str]:
    """The names of the settings that say where the type's secrets are sent (a base URL, an SMTP host and port)."""
    return [s.name for s in settings_of(provider_type) if s.kind in LOCATION_KINDS]


def origin(provider_type: str, values: Mapping[str, Sourced]) -> dict[str, str]:
    """Where the type's secrets are sent, per location setting: a URL's scheme, host and port, a host's name, a
    port's number. A secret is bound to the origin it was given for; the path of a URL does not move it.

    Raises InvalidSetting for a location setting that cannot be parsed."""
    found = {}
    for setting in settings_of(provider_type):
        if setting.kind in LOCATION_KINDS:
            field, raw = label(setting, values[setting.name]), values[setting.name].value
            if setting.kind == "url":
                scheme, host, port = _location(field, raw)
                found[setting.name] = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"
            else:
                found[setting.name] = str(_PARSERS[setting.kind](field, raw)).lower().rstrip(".")
    return found


def _check_smtp(typed: dict[str, Value], values: Mapping[str, Sourced], settings: tuple[Setting, ...]) -> None:
    if not typed["security"]:
        typed["security"] = "none" if typed["host"] in LOOPBACK_HOSTS else "starttls"
    if typed["username"] and typed["security"] == "none" and typed["host"] not in LOOPBACK_HOSTS:
        where = label(next(s for s in settings if s.name == "security"), values["security"])
        raise InvalidSetting(where, f"AUTH to {typed['host']} without TLS would send the password in clear")


def _text(field: str, raw: str) -> str:
    if len(raw) > MAX_VALUE_CHARS or any(c in raw for c in "\r\n\0"):
        raise InvalidSetting(field, f"at most {MAX_VALUE_CHARS} characters, without line breaks")
    return raw


def _key(field: str, raw: str) -> str:
    if not raw.strip():
        raise InvalidSetting(field, "the API key is empty")
    return _text(field, raw)


def _url(field: str, raw: str) -> str:
    """Plain http only to a loopback host (the local sandbox): anywhere else the key and the mail would cross
    the network in clear."""
    scheme, host, _ = _location(field, raw)
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        raise InvalidSetting(field, f"base URL {raw!r} must use https: plain http is only for a loopback host "
                                    f"({', '.join(sorted(LOOPBACK_HOSTS))})")
    return raw


def _location(field: str, raw: str) -> tuple[str, str, int]:
    """A base URL's scheme, host name and port (the scheme's default when none is written)."""
    parts = _URL.fullmatch(_text(field, raw))
    if parts is None:
        raise InvalidSetting(field, f"base URL {raw!r} must read scheme://host[:port][/path]: http(s), a host name "
                                    "or [IPv6] literal, no user info, backslash, query, fragment or escapes")
    port = int(parts["port"] or (443 if parts["scheme"] == "https" else 80))
    if not 0 < port < 65536:
        raise InvalidSetting(field, f"base URL {raw!r} has a port that is not a TCP port")
    return parts["scheme"], parts["host"].strip("[]").rstrip(".").lower(), port


def _domain(field: str, raw: str) -> str:
    if not raw or "/" in raw or any(c.isspace() for c in _text(field, raw)):
        raise InvalidSetting(field, f"{raw!r} is not a domain name")
    return raw


def _host(field: str, raw: str) -> str:
    if not raw or any(c.isspace() for c in _text(field, raw)):
        raise InvalidSetting(field, f"{raw!r} is not a host name")
    return raw


def _port(field: str, raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise InvalidSetting(field, f"{raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise InvalidSetting(field, f"{port} is not a TCP port")
    return port


def _seconds(field: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise InvalidSetting(field, f"{raw!r} is not a number of seconds") from None
    if not (0 < value <= MAX_TIMEOUT_S and math.isfinite(value)):
        raise InvalidSetting(field, f"{raw!r} must be a positive number of seconds, at most {MAX_TIMEOUT_S:.0f}")
    return value


def _security(field: str, raw: str) -> str:
    mode = raw.strip().lower()
    if mode and mode not in SECURITY_MODES:
        raise InvalidSetting(field, f"{raw!r} must be one of {', '.join(SECURITY_MODES)}")
    return mode


_PARSERS: dict[str, Callable[[str, str], Value]] = {
    "text": _text, "key": _key, "url": _url, "domain": _domain, "host": _host, "port": _port,
    "seconds": _seconds, "security": _security,
}
