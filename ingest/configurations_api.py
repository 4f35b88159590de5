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
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ingest import openapi
from ingest.admin_bodies import REFUSALS, Refused, json_object, refusal
from ingest.api_root import API as ROOT
from ingest.control_topic import ControlUnavailable, ControlView, not_stored
from ingest.responses import error, json_response
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

    async def _set(self, config_id: str, value: object, create: bool) -> dict[str, Any]:
        """Raises one of REFUSALS: InvalidSetting (422), ControlUnavailable (503), 409 when POST meets a value."""
        checked = check_value(config_id, value, self._levels)
        await self._topic.refresh()
        if create and config_id in self._records:
            raise Refused(409, f"{config_id} is set; change it with PUT {PREFIX}/{config_id}", "id")
        await self._write(ConfigurationRecord(config_id, checked, updated_at=now_ms()))
        return self._view(config_id)

    async def _write(self, record: ConfigurationRecord) -> None:
        await self._topic.write(record.id, record.encode())
        log.info("event=configuration_written id=%s removed=%s value=%s", record.id, record.removed,
                 orjson.dumps(record.value).decode())

    def router(self) -> APIRouter:
        routes = APIRouter(prefix=PREFIX, tags=["dispatcher"])

        @routes.get("/", **openapi.LIST_CONFIGURATIONS)
        async def list_configurations() -> Response:
            try:
                await self._topic.loaded()
            except ControlUnavailable as err:
                return error(503, f"the configurations cannot be read now: {err}")
            return json_response({"configurations": [self._view(config_id) for config_id in IDS]})

        @routes.get("/{config_id}", **openapi.GET_CONFIGURATION)
        async def get_configuration(config_id: str) -> Response:
            if config_id not in IDS:
                return error(404, f"configuration {config_id} not found (known: {', '.join(IDS)})")
            try:
                await self._topic.loaded()
            except ControlUnavailable as err:
                return error(503, f"the configurations cannot be read now: {err}")
            return json_response(self._view(config_id))

        @routes.post("/", status_code=201, **openapi.CREATE_CONFIGURATION)
        async def create_configuration(request: Request) -> Response:
            try:
                data = await json_object(request, ("id", "value"))
                config_id = data.get("id")
                if not isinstance(config_id, str) or config_id not in IDS:
                    raise InvalidSetting("id", f"required, one of {', '.join(IDS)}")
                view = await self._set(config_id, data.get("value"), create=True)
            except REFUSALS as err:
                return refusal(err)
            return json_response(view, 201, {"Location": view["url"]})

        @routes.put("/{config_id}", **openapi.CHANGE_CONFIGURATION)
        async def change_configuration(config_id: str, request: Request) -> Response:
            if config_id not in IDS:
                return error(404, f"configuration {config_id} not found (known: {', '.join(IDS)})")
            try:
                data = await json_object(request, ("value",))
                view = await self._set(config_id, data.get("value"), create=False)
            except REFUSALS as err:
                return refusal(err)
            return json_response(view)

        @routes.delete("/{config_id}", status_code=204, **openapi.DELETE_CONFIGURATION)
        async def delete_configuration(config_id: str) -> Response:
            """The API's value goes; the environment's applies again."""
            try:
                await self._topic.refresh()
                if config_id not in IDS or config_id not in self._records:
                    return error(404, f"configuration {config_id} has no value set through the API")
                await self._write(ConfigurationRecord(config_id, self._environment[config_id], removed=True,
                                                      updated_at=now_ms()))
            except ControlUnavailable as err:
                return error(503, not_stored(err, "the removal"))
            return Response(status_code=204)

        return routes

