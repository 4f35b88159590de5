"""Build the provider list from the environment; the defaults point at the local sandbox."""
import math
import os
from collections.abc import Callable, Mapping

from typing import cast

from providers.base import ProviderAdapter
from providers.errors import ProviderConfigError
from providers.mailgun import Mailgun
from providers.postmark import Postmark
from providers.sendgrid import SendGrid
from providers.smtp import LOOPBACK_HOSTS, SECURITY_MODES, Security, SmtpRelay

Timeouts = dict[str, float]


def _mailgun(env: Mapping[str, str], timeouts: Timeouts) -> ProviderAdapter:
    return Mailgun(
        env.get("MAILGUN_BASE_URL", "http://127.0.0.1:8025"),
        env.get("MAILGUN_API_KEY", "sandbox-key"),
        env.get("MAILGUN_DOMAIN", "sandbox.mercury.local"),
        **timeouts,
    )


def _sendgrid(env: Mapping[str, str], timeouts: Timeouts) -> ProviderAdapter:
    return SendGrid(
        env.get("SENDGRID_BASE_URL", "http://127.0.0.1:8026"),
        env.get("SENDGRID_API_KEY", "sandbox-key"),
        **timeouts,
    )


def _postmark(env: Mapping[str, str], timeouts: Timeouts) -> ProviderAdapter:
    return Postmark(
        env.get("POSTMARK_BASE_URL", "http://127.0.0.1:8027"),
        env.get("POSTMARK_SERVER_TOKEN", "sandbox-key"),
        **timeouts,
    )


def _smtp(env: Mapping[str, str], timeouts: Timeouts) -> ProviderAdapter:
    host = env.get("SMTP_HOST", "127.0.0.1")
    # The sandbox on this machine speaks plain SMTP; a relay anywhere else gets STARTTLS unless told otherwise.
    security = env.get("SMTP_SECURITY", "none" if host in LOOPBACK_HOSTS else "starttls").strip().lower()
    if security not in SECURITY_MODES:
        raise ProviderConfigError(f"SMTP_SECURITY={security!r} must be one of {', '.join(SECURITY_MODES)}")
    raw_port = env.get("SMTP_PORT", "8028")
    try:
        port = int(raw_port)
    except ValueError:
        raise ProviderConfigError(f"SMTP_PORT={raw_port!r} is not a port number") from None
    return SmtpRelay(
        host,
        port,
        security=cast(Security, security),
        username=env.get("SMTP_USERNAME", "sandbox"),
        password=env.get("SMTP_PASSWORD", "sandbox-key"),
        ca_file=env.get("SMTP_CA_FILE") or None,
        connect_timeout=timeouts["connect_timeout"],
        # A relay may scan the mail before its final reply: SMTP_TIMEOUT bounds the whole conversation.
        read_timeout=_seconds(env, "SMTP_TIMEOUT", timeouts["read_timeout"]),
    )


ADAPTERS: dict[str, Callable[[Mapping[str, str], Timeouts], ProviderAdapter]] = {
    "mailgun": _mailgun,
    "sendgrid": _sendgrid,
    "postmark": _postmark,
    "smtp": _smtp,
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


def load_providers(env: Mapping[str, str] = os.environ) -> list[ProviderAdapter]:
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
