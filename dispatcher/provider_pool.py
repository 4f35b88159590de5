"""The providers a worker sends through, kept in step with the provider registry while it runs.

The environment's providers (MERCURY_PROVIDERS) are where a worker starts; each registry record then adds a
provider, replaces one (sends under way finish on the old adapter), disables or removes it, and the fleet's
health board learns every new name. A record that cannot be used (it does not decode, a setting is wrong, its
secrets do not open) is logged and changes nothing: the worker keeps sending with what it had.
"""
import logging
from collections.abc import Mapping

from dispatcher.delivery import Dispatcher
from dispatcher.health import FleetHealth
from providers.base import ProviderAdapter
from providers.config import build_provider
from providers.errors import ProviderConfigError
from schemas.codec import DecodeError
from schemas.control.provider_entries import ProviderEntry, check_entry, effective
from schemas.control.provider_settings import InvalidSetting
from schemas.control.secrets import SecretBox, SecretsUnavailable, open_secrets

log = logging.getLogger("mercury.dispatcher.providers")


def probe_lease_s(services: list[ProviderAdapter]) -> float:
    """How long a probe may be out: the longest send (connect + read timeout) plus a second."""
    return max(sum(s.timeout) for s in services) + 1


class ProviderPool:
    def __init__(self, dispatcher: Dispatcher, health: FleetHealth, env: Mapping[str, str],
                 secrets: SecretBox | None) -> None:
        self._dispatcher = dispatcher
        self._health = health
        self._env = env
        self._secrets = secrets
        self._applied: dict[str, ProviderEntry] = {}

    def apply(self, key: str, value: bytes) -> None:
        """Apply one registry record read from the topic (the replica calls this in log order)."""
        try:
            entry = ProviderEntry.decode(value)
            if entry.id != key:
                raise DecodeError(f"a record under {key!r} names provider {entry.id!r}")
        except DecodeError as err:
            log.error("provider_record_invalid", extra={"id": key, "error": str(err), "kept": "previous"})
            return
        if self._applied.get(key) == entry:
            return
        try:
            change = self._apply(entry)
        except (InvalidSetting, ProviderConfigError, SecretsUnavailable) as err:
            log.error("provider_record_invalid",
                      extra={"id": key, "type": entry.type, "error": str(err), "kept": "previous"})
            return
        self._applied[key] = entry
        log.info("provider_changed", extra={
            "id": entry.id, "type": entry.type, "change": change, "enabled": entry.enabled and not entry.removed,
            "settings": ",".join(sorted(entry.settings)) or "-", "secrets": ",".join(sorted(entry.secret_names)) or "-",
            "updated_at": entry.updated_at})

    def _apply(self, entry: ProviderEntry) -> str:
        """Raises InvalidSetting, ProviderConfigError or SecretsUnavailable before changing anything."""
        present = any(s.name == entry.id for s in self._dispatcher.services())
        if entry.removed or not entry.enabled:
            self._dispatcher.drop_service(entry.id)
            return "removed" if entry.removed else "disabled"
        secrets = open_secrets(self._secrets, entry.secrets)
        check_entry(entry, self._env, secrets)
        service = build_provider(entry.id, entry.type, effective(entry.type, self._env, entry.settings, secrets))
        self._health.add_provider(entry.id)
        self._dispatcher.set_service(service)
        self._health.set_probe_lease(probe_lease_s(self._dispatcher.services()))
        return "replaced" if present else "added"
