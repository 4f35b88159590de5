"""A real sandbox process on free ports, and provider adapters pointed at it."""
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from sandbox_client import Sandbox

from providers import MailService
from providers.config import ADAPTERS
from schemas.model import Mail


@pytest.fixture(params=sorted(ADAPTERS))
def provider(request: pytest.FixtureRequest) -> str:
    """Every registered adapter: a new one joins the contract suite (and needs a sandbox emulator)."""
    return request.param


@pytest.fixture
def service(sandbox: Sandbox, provider: str) -> Iterator[MailService]:
    service = sandbox.service(provider)
    yield service
    service.close()


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
