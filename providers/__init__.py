"""Email provider adapters behind one `ProviderAdapter` abstraction, and a local sandbox that speaks their APIs."""
from providers.base import MailService, ProviderAdapter, SendResult
from providers.config import load_providers
from providers.errors import (
    AmbiguousError,
    PermanentError,
    ProviderConfigError,
    ProviderError,
    ProviderFailure,
    ThrottledError,
    TransientError,
)

__all__ = [
    "AmbiguousError",
    "MailService",
    "PermanentError",
    "ProviderAdapter",
    "ProviderConfigError",
    "ProviderError",
    "ProviderFailure",
    "SendResult",
    "ThrottledError",
    "TransientError",
    "load_providers",
]
