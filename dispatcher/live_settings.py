"""The retry ladder, breaker thresholds and rate limits, kept in step with the configurations topic.

The environment's values are where a worker starts; a record sets a value, a removed record brings the
environment's back. A record that cannot be used (it does not decode, or its value is wrong here, e.g. a
ladder longer than this worker's retry topics) is logged and changes nothing.
"""
import logging
from typing import Any

import orjson

from dispatcher.delivery import Dispatcher
from dispatcher.health import FleetHealth
from dispatcher.ratelimit import RateLimits
from schemas.codec import DecodeError
from schemas.control.configurations import BREAKERS, IDS, RETRY_LADDER, ConfigurationRecord, check_value
from schemas.control.provider_settings import API, ENVIRONMENT, InvalidSetting

log = logging.getLogger("mercury.dispatcher.settings")


class LiveSettings:
    def __init__(self, environment: dict[str, dict[str, Any]], levels: int, dispatcher: Dispatcher,
                 health: FleetHealth, limits: RateLimits) -> None:
        """`environment` holds each configuration's value from the environment (what the parts start with);
        `levels` is the number of retry topics."""
        self._environment = environment
        self._levels = levels
        self._dispatcher = dispatcher
        self._health = health
        self._limits = limits
        self._current = dict(environment)

    def value(self, config_id: str) -> dict[str, Any]:
        return self._current[config_id]

    def apply(self, key: str, value: bytes) -> None:
        """Apply one configuration record read from the topic (the replica calls this in log order)."""
        try:
            record = ConfigurationRecord.decode(value)
            if record.id != key or key not in IDS:
                raise DecodeError(f"a record under {key!r} for configuration {record.id!r}")
            new = self._environment[key] if record.removed else check_value(key, record.value, self._levels)
        except (DecodeError, InvalidSetting) as err:
            log.error("configuration_record_invalid", extra={"id": key, "error": str(err), "kept": "previous"})
            return
        if new == self._current[key]:
            return
        self._current[key] = new
        if key == RETRY_LADDER:
            self._dispatcher.set_retry_delays(tuple(new["delays_s"]))
        elif key == BREAKERS:
            self._health.set_thresholds(new["failures"], new["recovery_s"])
        else:
            self._limits.set_rates(new)
        log.info("configuration_changed", extra={"id": key, "source": ENVIRONMENT if record.removed else API,
                                                 "value": orjson.dumps(new).decode(), "updated_at": record.updated_at})
