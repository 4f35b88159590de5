"""`/api/v1.0/configurations/`: the retry ladder, provider rate limits and breaker thresholds, changed while the
dispatchers run (ids and values in `schemas.control.configurations`).

Each configuration always has a value: the environment's (give the gateway the dispatchers' environment), or
the one set here, which every dispatcher worker applies as it reads it. POST sets a value where the
environment's applies (409 if one is set), PUT sets it either way, DELETE brings the environment's back.
"""
import logging
import os
from collections.abc import Mapping
from typing import Any

import orjson
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
from schemas.control.configurations import IDS, ConfigurationRecord, check_value, environment_values, retry_levels
from schemas.control.provider_settings import API, ENVIRONMENT, InvalidSetting
from schemas.events import now_ms

log = logging.getLogger("mercury.ingest.configurations")
PREFIX = f"{ROOT}/configurations"


class ConfigurationsApi(ControlView):
    def __init__(self, bootstrap: str, env: Mapping[str, str] = os.environ, topic: str = topics.CONFIGURATIONS,
                 timeout_s: float = 10.0) -> None:
        """Raises ValueError for an environment value that cannot be used (the dispatchers would not start)."""
        self._environment = environment_values(env)
        self._levels = retry_levels(env)
        self._records: dict[str, ConfigurationRecord] = {}
        super().__init__(bootstrap, topic, timeout_s)

    def _apply(self, key: str, value: bytes) -> None:
        record = ConfigurationRecord.decode(value)
        if record.id != key:
            raise ValueError(f"a configuration record under {key!r} names {record.id!r}")
        if record.removed:
            self._records.pop(key, None)
        else:
            self._records[key] = record

    def _view(self, config_id: str) -> dict[str, Any]:
        record = self._records.get(config_id)
        return {
            "id": config_id,
            "value": self._environment[config_id] if record is None else record.value,
            "source": ENVIRONMENT if record is None else API,
            "environment": self._environment[config_id],
            "updated_at": None if record is None else record.updated_at,
            "url": f"{PREFIX}/{config_id}",
        }

    async def set(self, config_id: str, value: object, create: bool) -> dict[str, Any]:
        """Raises InvalidSetting (422), a 503 when the change cannot be stored, a 409 when POST meets a value."""
        checked = check_value(config_id, value, self._levels)
        try:
            await self._topic.refresh()
            if create and config_id in self._records:
                raise GatewayError(409, f"{config_id} is set; change it with PUT {PREFIX}/{config_id}", "id")
            await self._write(ConfigurationRecord(config_id, checked, updated_at=now_ms()))
        except ControlUnavailable as err:
            raise not_stored(err, "the change") from err
        return self._view(config_id)

    async def _write(self, record: ConfigurationRecord) -> None:
        await self._topic.write(record.id, record.encode())
        log.info("configuration_written", extra={"id": record.id, "removed": record.removed,
                                                 "value": orjson.dumps(record.value).decode()})


def install(app: FastAPI, configs: ConfigurationsApi) -> None:
    """Operators only."""
    routes = APIRouter(prefix=PREFIX, tags=["dispatcher"])

    @routes.get("/", **docs.LIST_CONFIGURATIONS)
    async def list_configurations() -> Response:
        await configs.loaded("the configurations")
        return json_response({"configurations": [configs._view(config_id) for config_id in IDS]})

    @routes.get("/{config_id}", **docs.GET_CONFIGURATION)
    async def get_configuration(config_id: str) -> Response:
        if config_id not in IDS:
            raise GatewayError(404, f"configuration {config_id} not found (known: {', '.join(IDS)})")
        await configs.loaded("the configurations")
        return json_response(configs._view(config_id))

    @routes.post("/", status_code=201, **docs.CREATE_CONFIGURATION)
    async def create_configuration(request: Request) -> Response:
        data = await json_object(request, ("id", "value"))
        config_id = data.get("id")
        if not isinstance(config_id, str) or config_id not in IDS:
            raise InvalidSetting("id", f"required, one of {', '.join(IDS)}")
        view = await configs.set(config_id, data.get("value"), create=True)
        return json_response(view, 201, {"Location": view["url"]})

    @routes.put("/{config_id}", **docs.CHANGE_CONFIGURATION)
    async def change_configuration(config_id: str, request: Request) -> Response:
        if config_id not in IDS:
            raise GatewayError(404, f"configuration {config_id} not found (known: {', '.join(IDS)})")
        data = await json_object(request, ("value",))
        view = await configs.set(config_id, data.get("value"), create=False)
        return json_response(view)

    @routes.delete("/{config_id}", status_code=204, **docs.DELETE_CONFIGURATION)
    async def delete_configuration(config_id: str) -> Response:
        """The API's value goes; the environment's applies again."""
        try:
            await configs._topic.refresh()
            if config_id not in IDS or config_id not in configs._records:
                raise GatewayError(404, f"configuration {config_id} has no value set through the API")
            await configs._write(ConfigurationRecord(config_id, configs._environment[config_id], removed=True,
                                                  updated_at=now_ms()))
        except ControlUnavailable as err:
            raise not_stored(err, "the removal") from err
        return Response(status_code=204)

    app.include_router(routes, dependencies=[OPERATOR])
