"""Provider secrets on the registry topic: Fernet tokens keyed by MERCURY_SECRETS_KEY.

The gateway encrypts what an operator writes and every dispatcher decrypts it; nobody else who can read the
topic learns a key. MERCURY_SECRETS_KEY holds one Fernet key (urlsafe base64 of 32 bytes), or several
separated by commas: the first encrypts, any of them decrypts, so a key can be rotated without downtime.
"""
import os
from collections.abc import Mapping

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

KEY_ENV = "MERCURY_SECRETS_KEY"


class SecretsUnavailable(RuntimeError):
    """No key is configured, or the key given does not open the stored secrets."""


class SecretBox:
    def __init__(self, keys: str) -> None:
        """Raises ValueError for a key that is not a Fernet key (without repeating the key)."""
        try:
            self._fernet = MultiFernet([Fernet(key.strip()) for key in keys.split(",") if key.strip()])
        except (ValueError, TypeError):
            raise ValueError(f"{KEY_ENV} must be Fernet keys (urlsafe base64 of 32 bytes), "
                             "separated by commas") from None

    def __repr__(self) -> str:
        return "SecretBox(<keys hidden>)"

    def seal(self, secrets: Mapping[str, str]) -> bytes:
        """The secrets as one token; empty when there are none, so no key is needed to store none."""
        return self._fernet.encrypt(orjson.dumps(dict(secrets), option=orjson.OPT_SORT_KEYS)) if secrets else b""

    def open(self, token: bytes) -> dict[str, str]:
        """Raises SecretsUnavailable when no configured key opens the token."""
        if not token:
            return {}
        try:
            secrets = orjson.loads(self._fernet.decrypt(token))
        except (InvalidToken, orjson.JSONDecodeError):
            raise SecretsUnavailable(f"the stored secrets do not open with {KEY_ENV}") from None
        if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
            raise SecretsUnavailable("the stored secrets are not a map of strings")
        return secrets


def secret_box(env: Mapping[str, str] = os.environ) -> SecretBox | None:
    """The configured box, or None when MERCURY_SECRETS_KEY is unset; raises ValueError for a malformed key."""
    keys = env.get(KEY_ENV, "").strip()
    return SecretBox(keys) if keys else None


def open_secrets(box: SecretBox | None, token: bytes) -> dict[str, str]:
    """Secrets stored as `token`; raises SecretsUnavailable when there are some but no key."""
    if not token:
        return {}
    if box is None:
        raise SecretsUnavailable(f"secrets are stored but {KEY_ENV} is not set")
    return box.open(token)
