"""Build adapters from settings: the environment's providers at start, and registry entries at runtime.

What each type reads, and how each value is checked, is the table in `schemas.control.provider_settings`; this module
only turns checked values into adapters. The defaults point at the local sandbox.
"""
import os
from collections.abc import Callable, Mapping
from typing import cast

from providers.base import ProviderAdapter
from providers.errors import ProviderConfigError
from providers.mailgun import Mailgun
from providers.postmark import Postmark
from providers.sendgrid import SendGrid
from providers.smtp import SmtpRelay
from schemas.control.provider_settings import (
    InvalidSetting,
    Security,
    Sourced,
    Value,
    environment_providers,
    from_environment,
    parse,
)

Settings = dict[str, Value]


def _mailgun(s: Settings) -> ProviderAdapter:
    return Mailgun(str(s["base_url"]), str(s["api_key"]), str(s["domain"]), **_timeouts(s))


def _sendgrid(s: Settings) -> ProviderAdapter:
    return SendGrid(str(s["base_url"]), str(s["api_key"]), **_timeouts(s))


def _postmark(s: Settings) -> ProviderAdapter:
    return Postmark(str(s["base_url"]), str(s["server_token"]), **_timeouts(s))


def _smtp(s: Settings) -> ProviderAdapter:
    return SmtpRelay(str(s["host"]), int(s["port"]), security=cast(Security, s["security"]),
                     username=str(s["username"]), password=str(s["password"]), ca_file=str(s["ca_file"]) or None,
                     **_timeouts(s))


def _timeouts(s: Settings) -> dict[str, float]:
    return {"connect_timeout": float(s["connect_timeout"]), "read_timeout": float(s["read_timeout"])}


ADAPTERS: dict[str, Callable[[Settings], ProviderAdapter]] = {
    "mailgun": _mailgun,
    "sendgrid": _sendgrid,
    "postmark": _postmark,
    "smtp": _smtp,
}


def build_provider(name: str, provider_type: str, values: Mapping[str, Sourced]) -> ProviderAdapter:
    """An adapter named `name` (its id in events and breakers); raises ProviderConfigError naming the setting."""
    try:
        adapter = ADAPTERS[provider_type](parse(provider_type, values))
    except InvalidSetting as err:
        raise ProviderConfigError(str(err)) from None
    adapter.name = name
    return adapter


def load_providers(env: Mapping[str, str] = os.environ) -> list[ProviderAdapter]:
    """The configured providers, in MERCURY_PROVIDERS order; raises ProviderConfigError on any bad setting."""
    try:
        names = environment_providers(env)
    except InvalidSetting as err:
        raise ProviderConfigError(str(err)) from None
    return [build_provider(name, name, from_environment(name, env)) for name in names]
