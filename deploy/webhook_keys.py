"""Fresh webhook secrets for one local stack: the sandbox signs with them, the gateway verifies.

Generated at each start and held only in the children's environment, so no key is ever written down.
"""
import base64
import secrets
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from ingest.webhooks.routes import PREFIX as WEBHOOK_PATH


@dataclass(frozen=True)
class WebhookKeys:
    mailgun_signing_key: str = field(repr=False)
    # Base64 DER, the way SendGrid shows its verification key: PKCS#8 private, SubjectPublicKeyInfo public.
    sendgrid_private_key: str = field(repr=False)
    sendgrid_public_key: str = field(repr=False)

    @classmethod
    def generate(cls) -> "WebhookKeys":
        private = ec.generate_private_key(ec.SECP256R1())
        der_private = private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        der_public = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return cls(secrets.token_hex(32), base64.b64encode(der_private).decode(), base64.b64encode(der_public).decode())

    def sandbox_env(self, api_url: str) -> dict[str, str]:
        """The sandbox posts each provider's webhooks to the gateway, signed as that provider would."""
        return {
            "SANDBOX_WEBHOOK_URL_MAILGUN": f"{api_url}{WEBHOOK_PATH}/mailgun",
            "SANDBOX_WEBHOOK_URL_SENDGRID": f"{api_url}{WEBHOOK_PATH}/sendgrid",
            "SANDBOX_MAILGUN_WEBHOOK_SIGNING_KEY": self.mailgun_signing_key,
            "SANDBOX_SENDGRID_WEBHOOK_PRIVATE_KEY": self.sendgrid_private_key,
        }

    def ingest_env(self) -> dict[str, str]:
        return {
            "MERCURY_MAILGUN_WEBHOOK_SIGNING_KEY": self.mailgun_signing_key,
            "MERCURY_SENDGRID_WEBHOOK_PUBLIC_KEY": self.sendgrid_public_key,
        }
