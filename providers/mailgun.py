"""Mailgun: `POST /v3/{domain}/messages`, HTTP Basic `api:KEY`, multipart form, 200 `{"id", "message"}`."""
from typing import Any

import requests

from providers.base import MailService
from providers.errors import ProviderConfigError
from schemas.message_ids import normalise_message_id
from schemas.model import Mail

FormFields = list[tuple[str, tuple[None, str]]]


class Mailgun(MailService):
    name = "mailgun"
    full_name = "Mailgun"

    def __init__(
        self, base_url: str, api_key: str, domain: str, *, connect_timeout: float = 2.0, read_timeout: float = 10.0
    ) -> None:
        super().__init__(base_url, api_key, connect_timeout=connect_timeout, read_timeout=read_timeout)
        if not domain or "/" in domain:
            raise ProviderConfigError(f"mailgun: sending domain {domain!r} is not a domain name")
        self.domain = domain
        self.url = f"{self.base_url}/v3/{domain}/messages"
        # Mailgun authenticates with HTTP Basic: the user is always the literal "api", the key is the password.
        self.auth = ("api", api_key)

    def prepare_message(self, mail: Mail) -> FormFields:
        fields = [
            ("from", mail.sender),
            # Mailgun takes `to` repeated or comma-joined; repeating avoids quoting names that contain commas.
            *(("to", recipient) for recipient in mail.recipients),
            ("subject", mail.subject),
            ("text", mail.content),
            # `v:` fields come back as user-variables in Mailgun's events and webhooks.
            ("v:mercury-id", mail.id),
        ]
        # requests only builds multipart/form-data when given `files`; a None filename makes a plain field.
        return [(key, (None, value)) for key, value in fields]

    def send_message(self, message: FormFields) -> requests.Response:
        return self.post(self.url, files=message, auth=self.auth)

    def response_details(self, response: requests.Response) -> str:
        try:
            message_id = response.json()["id"]
        except (ValueError, KeyError, TypeError):
            return ""
        # The id is the Message-Id header, angle brackets included; events and webhooks report it bare.
        return normalise_message_id(str(message_id))

    def error_detail(self, response: requests.Response) -> str:
        # Most errors are JSON {"message": ...}, but a bad key gets a bare text "Forbidden".
        try:
            body: Any = response.json()
        except ValueError:
            return super().error_detail(response)
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
        return super().error_detail(response)
