"""One emulated provider on its own port, with the endpoints that read and change its faults and mailbox.

The same endpoints are mounted at `/sandbox` on an HTTP provider's port and at `/sandbox/<provider>` on the
control port, which stays reachable while the provider is down. A provider that does not speak HTTP (SMTP)
brings its own listener and is driven through the control port only.
"""
import asyncio
from typing import Protocol, cast

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from providers.sandbox import logs
from providers.sandbox.emulator import Emulator
from providers.sandbox.faults import Faults, FaultsInvalid
from providers.sandbox.listener import Listener
from providers.sandbox.mailbox import Mailbox


def json_response(content: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


class Emulated(Protocol):
    """What the host drives in any emulated provider, whatever protocol it speaks."""

    name: str
    faults: Faults
    mailbox: Mailbox

    def release_held(self) -> None: ...


class PortListener(Protocol):
    """A port that can close (connections refused) and open again while the sandbox runs."""

    port: int

    @property
    def is_open(self) -> bool: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class ProviderHost:
    def __init__(self, emulator: Emulated, host: str, port: int) -> None:
        self.emulator = emulator
        self.name = emulator.name
        self.listener = self.listen(host, port)
        self._lock = asyncio.Lock()
        self._changes: set[asyncio.Task[None]] = set()

    def listen(self, host: str, port: int) -> PortListener:
        """The provider's port: its HTTP API and, under `/sandbox`, its fault and mailbox endpoints."""
        routes = [*cast(Emulator, self.emulator).routes(), Mount("/sandbox", routes=self.sandbox_routes(wait=False))]
        return Listener(Starlette(routes=routes), host, port)

    @property
    def port(self) -> int:
        return self.listener.port

    async def start(self) -> None:
        await self.listener.open()

    async def stop(self) -> None:
        async with self._lock:
            self.emulator.release_held()
            await self.listener.close()

    async def apply(self, faults: Faults) -> None:
        """Make `faults` current, closing or reopening the port to match `down`."""
        if faults != self.emulator.faults:
            logs.event("faults.changed", provider=self.name, faults=orjson.dumps(faults.to_json()).decode())
        self.emulator.faults = faults
        async with self._lock:
            # Re-read under the lock: a later change may have landed while an earlier one was waiting.
            down = self.emulator.faults.down
            if down and self.listener.is_open:
                self.emulator.release_held()
                await self.listener.close()
                logs.event("provider.down", provider=self.name, port=self.port)
            elif not down and not self.listener.is_open:
                await self.listener.open()
                logs.event("provider.up", provider=self.name, port=self.port)

    def status(self) -> dict[str, object]:
        return {
            "port": self.port,
            "up": self.listener.is_open,
            "received": self.emulator.mailbox.received,
            "faults": self.emulator.faults.to_json(),
        }

    def sandbox_routes(self, wait: bool) -> list[BaseRoute]:
        """Fault and mailbox endpoints. With `wait`, a fault change answers only once the port matches it;
        without (on the provider's own port, which "down" closes under the request) it answers at once."""

        async def change(faults: Faults) -> Response:
            task = asyncio.create_task(self.apply(faults))
            self._changes.add(task)
            task.add_done_callback(self._changes.discard)
            if wait:
                try:
                    await asyncio.shield(task)
                except OSError as err:
                    return json_response({"error": f"cannot reopen port {self.port}: {err}"}, 500)
            return json_response(faults.to_json())

        async def faults_endpoint(request: Request) -> Response:
            if request.method == "GET":
                return json_response(self.emulator.faults.to_json())
            if request.method == "DELETE":
                return await change(Faults())
            try:
                faults = Faults.from_json(orjson.loads(await request.body()))
            except orjson.JSONDecodeError:
                return json_response({"error": "faults must be a JSON object"}, 400)
            except FaultsInvalid as err:
                return json_response({"error": str(err)}, 400)
            return await change(faults)

        async def messages_endpoint(request: Request) -> Response:
            if request.method == "DELETE":
                self.emulator.mailbox.clear()
                return Response(status_code=204)
            return json_response(self.emulator.mailbox.messages())

        return [
            Route("/faults", faults_endpoint, methods=["GET", "PUT", "DELETE"]),
            Route("/messages", messages_endpoint, methods=["GET", "DELETE"]),
        ]
