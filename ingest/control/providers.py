"""`/api/v1.0/dispatcher/providers/`: add, change, disable or remove a mail provider while the dispatchers run.

The environment's providers (MERCURY_PROVIDERS and their variables; give the gateway the dispatchers'
environment) are the defaults; an entry written here replaces the one with its id or adds a new id, and every
dispatcher worker applies it as it reads it. Secrets are write-only: encrypted with MERCURY_SECRETS_KEY before
they reach the topic, and answers only say which secrets are set and where each value comes from.

A secret stays with the origin it was given for (see `schemas.control.provider_entries`): a request that moves a
provider to another host, port or scheme is refused unless it gives the provider's secrets again, and an entry
that stores a secret records the base URL (or SMTP host and port) it was given for.
"""
import logging
import os
from collections.abc import Mapping

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from ingest.api_root import API as ROOT
from ingest.bodies import json_object
from ingest.control import openapi as docs
from ingest.control.topic import ControlUnavailable, ControlView, not_stored
from ingest.errors import GatewayError
from ingest.keys.auth import OPERATOR
from ingest.responses import json_response
from schemas import topics
from schemas.control.provider_entries import (
    STORED,
    ProviderEntry,
    check_bound,
    check_entry,
    check_id,
    effective,
    pinned,
    stand_ins,
)
from schemas.control.provider_settings import (
    API,
    ENVIRONMENT,
    TYPES,
    InvalidSetting,
    environment_providers,
    origin,
    settings_of,
)
from schemas.control.secrets import KEY_ENV, SecretBox, SecretsUnavailable, open_secrets, secret_box
from schemas.events import now_ms

log = logging.getLogger("mercury.ingest.providers")
PREFIX = f"{ROOT}/dispatcher/providers"
CREATE_FIELDS = ("id", "type", "enabled", "settings", "secrets")
CHANGE_FIELDS = ("type", "enabled", "settings", "secrets")


class ProvidersApi(ControlView):
    def __init__(self, bootstrap: str, env: Mapping[str, str] = os.environ, topic: str = topics.PROVIDERS,
                 timeout_s: float = 10.0) -> None:
        """Raises ValueError for a MERCURY_PROVIDERS or MERCURY_SECRETS_KEY that cannot be used."""
        self._env = env
        self._defaults = environment_providers(env)
        self._box = secret_box(env)
        self._entries: dict[str, ProviderEntry] = {}
        super().__init__(bootstrap, topic, timeout_s)

    def _apply(self, key: str, value: bytes) -> None:
        entry = ProviderEntry.decode(value)
        if entry.id != key:
            raise ValueError(f"a registry record under {key!r} names {entry.id!r}")
        self._entries[key] = entry

    def _current(self, provider_id: str) -> ProviderEntry | None:
        """The provider as it stands: its entry, the environment's default as an entry without an update
        time, or None when there is none (never was, or removed)."""
        entry = self._entries.get(provider_id)
        if entry is None:
            return ProviderEntry(provider_id, provider_id) if provider_id in self._defaults else None
        return None if entry.removed else entry

    def _view(self, entry: ProviderEntry) -> dict:
        stored = {name: STORED for name in entry.secret_names}
        values = effective(entry.type, self._env, entry.settings, stored)
        settings, secrets = {}, []
        for setting in settings_of(entry.type):
            if not setting.secret:
                settings[setting.name] = values[setting.name].value
            elif values[setting.name].value:
                secrets.append(setting.name)
        return {
            "id": entry.id, "type": entry.type, "enabled": entry.enabled,
            "source": API if entry.updated_at else ENVIRONMENT,
            "settings": settings, "secrets": secrets,
            "sources": {name: sourced.source for name, sourced in values.items()},
            "updated_at": entry.updated_at or None,
            "url": f"{PREFIX}/{entry.id}",
        }

    def _listed(self) -> list[dict]:
        ids = sorted({*self._defaults, *self._entries})
        return [self._view(entry) for entry in map(self._current, ids) if entry is not None]

    async def _create(self, data: dict) -> ProviderEntry:
        provider_id = check_id(data.get("id"))
        provider_type = _type(data.get("type"))
        enabled = _flag(data, "enabled", True)
        settings = {k: v for k, v in _changes(data, "settings").items() if v is not None}
        secrets = {k: v for k, v in _changes(data, "secrets").items() if v is not None}
        await self._topic.refresh()
        if self._current(provider_id) is not None:
            raise GatewayError(409, f"provider {provider_id} exists; change it with PUT {PREFIX}/{provider_id}", "id")
        settings = pinned(provider_type, self._env, settings, bool(secrets))
        entry = ProviderEntry(provider_id, provider_type, enabled, settings, tuple(sorted(secrets)),
                              updated_at=now_ms())
        check_entry(entry, self._env, secrets)
        return _sealed(entry, secrets, self._box)

    async def _change(self, provider_id: str, data: dict) -> ProviderEntry:
        await self._topic.refresh()
        current = self._current(provider_id)
        if current is None:
            raise GatewayError(404, f"provider {provider_id} not found")
        provider_type = _type(data["type"]) if "type" in data else current.type
        enabled = _flag(data, "enabled", current.enabled)
        secret_changes = _changes(data, "secrets")
        names = sorted(_merged(dict.fromkeys(current.secret_names, STORED), secret_changes))
        settings = pinned(provider_type, self._env, _merged(current.settings, _changes(data, "settings")), bool(names))
        entry = ProviderEntry(provider_id, provider_type, enabled, settings, tuple(names), current.secrets,
                              updated_at=now_ms())
        given = {name: value for name, value in secret_changes.items() if value is not None}
        check_entry(entry, self._env, {name: given.get(name, STORED) for name in names})
        self._check_kept(current, entry, [name for name in names if name not in given])
        if not secret_changes:
            return entry
        stored = _opened(self._box, current.secrets)
        return _sealed(entry, _merged(stored, secret_changes), self._box)

    def _check_kept(self, current: ProviderEntry, entry: ProviderEntry, kept: list[str]) -> None:
        """Raises InvalidSetting when the change sends the stored secrets it keeps to another origin than the
        current entry's, the one they were given for."""
        if not kept:
            return
        bound = origin(current.type, effective(current.type, self._env, current.settings, stand_ins(current)))
        check_bound(entry.type, effective(entry.type, self._env, entry.settings, stand_ins(entry)), bound, kept)

    async def _write(self, entry: ProviderEntry) -> None:
        await self._topic.write(entry.id, entry.encode())
        log.info("provider_written", extra={
            "id": entry.id, "type": entry.type, "enabled": entry.enabled, "removed": entry.removed,
            "settings": ",".join(sorted(entry.settings)) or "-", "secrets": ",".join(entry.secret_names) or "-"})

    async def _answer(self, request: Request, fields: tuple[str, ...], provider_id: str | None,
                      status: int) -> Response:
        data = await json_object(request, fields)
        try:
            entry = await (self._create(data) if provider_id is None else self._change(provider_id, data))
            await self._write(entry)
        except ControlUnavailable as err:
            raise not_stored(err, "the change") from err
        view = self._view(entry)
        return json_response(view, status, {"Location": view["url"]} if status == 201 else None)


def _type(value: object) -> str:
    if not isinstance(value, str) or value not in TYPES:
        raise InvalidSetting("type", f"required, one of {', '.join(TYPES)}")
    return value


def _flag(data: dict, field: str, default: bool) -> bool:
    value = data.get(field, default)
    if not isinstance(value, bool):
        raise InvalidSetting(field, "must be true or false")
    return value


def _changes(data: dict, field: str) -> dict[str, str | None]:
    """A settings or secrets object: strings (numbers taken as their text), or null to drop the API's value."""
    changes = data.get(field, {})
    if not isinstance(changes, dict):
        raise InvalidSetting(field, "must be an object of strings")
    found: dict[str, str | None] = {}
    for name, value in changes.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int | float)):
            raise InvalidSetting(f"{field}.{name}", "must be a string, a number or null")
        found[name] = None if value is None else str(value)
    return found


def _merged(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    merged = {**current, **{name: value for name, value in changes.items() if value is not None}}
    return {name: value for name, value in merged.items() if changes.get(name, "") is not None}


def _opened(box: SecretBox | None, token: bytes) -> dict[str, str]:
    try:
        return open_secrets(box, token)
    except SecretsUnavailable as err:
        raise GatewayError(503, f"secrets cannot be changed: {err}", "secrets") from err


def _sealed(entry: ProviderEntry, secrets: dict[str, str], box: SecretBox | None) -> ProviderEntry:
    """The entry carrying its secrets encrypted; refuses to store any without a key."""
    if secrets and box is None:
        raise GatewayError(503, f"secrets cannot be stored: {KEY_ENV} is not set on the gateway", "secrets")
    return ProviderEntry(entry.id, entry.type, entry.enabled, entry.settings, tuple(sorted(secrets)),
                         box.seal(secrets) if box else b"", entry.removed, entry.updated_at)


def install(app: FastAPI, registry: ProvidersApi) -> None:
    """Operators only."""
    routes = APIRouter(prefix=PREFIX, tags=["dispatcher"])

    @routes.get("/", **docs.LIST_PROVIDERS)
    async def list_providers() -> Response:
        await registry.loaded("the provider registry")
        return json_response({"providers": registry._listed()})

    @routes.get("/{provider_id}", **docs.GET_PROVIDER)
    async def get_provider(provider_id: str) -> Response:
        await registry.loaded("the provider registry")
        entry = registry._current(provider_id)
        if entry is None:
            raise GatewayError(404, f"provider {provider_id} not found")
        return json_response(registry._view(entry))

    @routes.post("/", status_code=201, **docs.CREATE_PROVIDER)
    async def create_provider(request: Request) -> Response:
        return await registry._answer(request, CREATE_FIELDS, None, 201)

    @routes.put("/{provider_id}", **docs.CHANGE_PROVIDER)
    async def change_provider(provider_id: str, request: Request) -> Response:
        return await registry._answer(request, CHANGE_FIELDS, provider_id, 200)

    @routes.delete("/{provider_id}", status_code=204, **docs.DELETE_PROVIDER)
    async def delete_provider(provider_id: str) -> Response:
        """Removed for good: the record stays, so no restart brings an environment default back."""
        try:
            await registry._topic.refresh()
            current = registry._current(provider_id)
            if current is None:
                raise GatewayError(404, f"provider {provider_id} not found")
            await registry._write(ProviderEntry(provider_id, current.type, enabled=False, removed=True,
                                            updated_at=now_ms()))
        except ControlUnavailable as err:
            raise not_stored(err, "the removal") from err
        return Response(status_code=204)

    app.include_router(routes, dependencies=[OPERATOR])
