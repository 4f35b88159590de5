"""What every emulated provider shares: the fault machinery around the send endpoint, and the mailbox.

A provider emulator supplies only its API's shape: how it authenticates, how it reads a send
request, and how it spells acceptance and errors.
"""
import asyncio
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from http import HTTPStatus
from typing import ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from providers.sandbox.faults import Faults
from providers.sandbox.mailbox import Mailbox, Received
from providers.sandbox.webhooks import WebhookEmitter

# How long the timeout fault holds an answer if the client never gives up.
HOLD_LIMIT_S = 120.0

_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+$")


def valid_address(address: str) -> bool:
    """A bare address with a dotted domain; as loose as the real APIs, which leave the rest to delivery."""
    return bool(_ADDRESS.match(address))


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a request is refused, with the request field it concerns where the API names one."""

    message: str
    field: str | None = None


class Invalid(Exception):
    """The send request breaks the provider's rules; answered with 400 in the provider's error shape."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__(*problems)
        self.problems = problems


class Emulator(ABC):
    """One provider's send endpoint with fault injection; the subclass speaks the provider's shape."""

    name: ClassVar[str]
    send_path: ClassVar[str]
    default_port: ClassVar[int]
    # The provider's wording for an error status, used when a fault injects that status.
    status_messages: ClassVar[dict[int, str]] = {}

    def __init__(self, api_key: str, keep: int) -> None:
        self.api_key = api_key
        self.faults = Faults()
        self.mailbox = Mailbox(keep)
        # Set when webhooks are configured: every accepted message is handed to it, never awaited.
        self.webhooks: WebhookEmitter | None = None
        self._release = asyncio.Event()

    def routes(self) -> list[BaseRoute]:
        return [Route(self.send_path, self.receive, methods=["POST"])]

    async def receive(self, request: Request) -> Response:
        faults = self.faults
        # Read the whole body first: every fault, the timeout above all, happens after the client sent it.
        await request.body()
        if faults.fails_now():
            response = self.injected_error(faults)
        else:
            response = await self.answer(request, faults)
        if faults.timeout:
            await self.hold(request)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        return response

    async def answer(self, request: Request, faults: Faults) -> Response:
        """What the real provider would answer: auth, validation, recipient checks, then acceptance."""
        if not self.authorized(request):
            return self.error_response(401, [Problem(self.status_message(401))])
        try:
            mail = await self.parse(request, faults)
        except Invalid as err:
            return self.error_response(400, list(err.problems))
        message_id = self.new_message_id(request)
        self.mailbox.add(message_id, mail)
        if self.webhooks is not None:
            self.webhooks.submit(message_id, mail)
        return self.accepted(message_id)

    def injected_error(self, faults: Faults) -> Response:
        response = self.error_response(faults.status, [Problem(self.status_message(faults.status))])
        if faults.status == 429 and faults.retry_after is not None:
            # Retry-After carries whole seconds; round up so a client never retries early.
            response.headers["Retry-After"] = str(math.ceil(faults.retry_after))
        return response

    async def hold(self, request: Request) -> None:
        """Withhold the answer until the client hangs up, the port closes, or a bound passes."""
        release = self._release

        async def hung_up() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        waits = [asyncio.create_task(hung_up()), asyncio.create_task(release.wait())]
        try:
            await asyncio.wait(waits, timeout=HOLD_LIMIT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def release_held(self) -> None:
        """Answer every held request now, so that closing the port never waits on one."""
        self._release.set()
        self._release = asyncio.Event()

    def deliverable(self, address: str, faults: Faults) -> bool:
        """Whether a recipient passes the address check and is not on the fault's reject list."""
        return valid_address(address) and not faults.rejects(address)

    def status_message(self, status: int) -> str:
        if status in self.status_messages:
            return self.status_messages[status]
        try:
            return HTTPStatus(status).phrase
        except ValueError:
            return "Error"

    @abstractmethod
    def authorized(self, request: Request) -> bool:
        """Whether the request carries the key the way this provider expects it."""

    @abstractmethod
    async def parse(self, request: Request, faults: Faults) -> Received:
        """Read and validate a send request; raise Invalid with the provider's own wording."""

    @abstractmethod
    def new_message_id(self, request: Request) -> str:
        """A fresh id in the provider's format."""

    @abstractmethod
    def accepted(self, message_id: str) -> Response:
        """The provider's success answer."""

    @abstractmethod
    def error_response(self, status: int, problems: list[Problem]) -> Response:
        """The provider's error answer for this status."""
