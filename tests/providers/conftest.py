"""A real sandbox process on free ports, and provider adapters pointed at it."""
import time
import uuid
from collections.abc import Callable

import pytest
from sandbox_client import Sandbox

from providers import MailService, load_providers
from providers.config import ADAPTERS
from schemas.model import Mail

# Every adapter of an HTTP API: a new one joins the contract suite (and needs a sandbox emulator). The SMTP
# relay speaks another protocol and has its own suite, test_smtp_relay.py.
HTTP_ADAPTERS = sorted(
    name for name in ADAPTERS if isinstance(load_providers({"MERCURY_PROVIDERS": name})[0], MailService)
)


@pytest.fixture(params=HTTP_ADAPTERS)
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def service(sandbox: Sandbox, provider: str) -> MailService:
    return sandbox.service(provider)


@pytest.fixture
def new_mail() -> Callable[..., Mail]:
    def make(recipients: tuple[str, ...] = ("ada@example.com",), subject: str = "Hello") -> Mail:
        return Mail(
            id=str(uuid.uuid4()),
            sender="noreply@mercury.example",
            recipients=recipients,
            subject=subject,
            content=f"Body of {subject}",
            created_at=int(time.time() * 1000),
        )

    return make
