"""Build the provider list from the environment; the defaults point at the local sandbox."""
import math
import os
from collections.abc import Callable, Mapping

from providers.base import MailService
from providers.errors import ProviderConfigError
from providers.mailgun import Mailgun
from providers.sendgrid import SendGrid

Timeouts = dict[str, float]


def _mailgun(env: Mapping[str, str], timeouts: Timeouts) -> MailService:
    return Mailgun(
        env.get("MAILGUN_BASE_URL", "http://127.0.0.1:8025"),
        env.get("MAILGUN_API_KEY", "sandbox-key"),
        env.get("MAILGUN_DOMAIN", "sandbox.mercury.local"),
        **timeouts,
    )


def _sendgrid(env: Mapping[str, str], timeouts: Timeouts) -> MailService:
    return SendGrid(
        env.get("SENDGRID_BASE_URL", "http://127.0.0.1:8026"),
        env.get("SENDGRID_API_KEY", "sandbox-key"),
        **timeouts,
    )


ADAPTERS: dict[str, Callable[[Mapping[str, str], Timeouts], MailService]] = {
    "mailgun": _mailgun,
    "sendgrid": _sendgrid,
}


def _seconds(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ProviderConfigError(f"{key}={raw!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise ProviderConfigError(f"{key}={raw!r} must be a positive, finite number of seconds")
    return value


def load_providers(env: Mapping[str, str] = os.environ) -> list[MailService]:
    """The configured providers, in MERCURY_PROVIDERS order; raises ProviderConfigError on any bad setting."""
    names = [name.strip().lower() for name in env.get("MERCURY_PROVIDERS", "mailgun,sendgrid").split(",")]
    names = [name for name in names if name]
    if not names:
        raise ProviderConfigError("MERCURY_PROVIDERS names no provider")
    unknown = [name for name in names if name not in ADAPTERS]
    if unknown:
        raise ProviderConfigError(f"unknown provider(s) {', '.join(unknown)}; known: {', '.join(sorted(ADAPTERS))}")
    if len(set(names)) != len(names):
        raise ProviderConfigError(f"MERCURY_PROVIDERS lists a provider twice: {','.join(names)}")
    timeouts = {
        "connect_timeout": _seconds(env, "MERCURY_PROVIDER_CONNECT_TIMEOUT", 2.0),
        "read_timeout": _seconds(env, "MERCURY_PROVIDER_READ_TIMEOUT", 10.0),
    }
    return [ADAPTERS[name](env, timeouts) for name in names]
