"""Mailgun: `POST /v3/{domain}/messages`, HTTP Basic `api:KEY`, multipart form, 200 `{"id", "message"}`."""
from typing import Any

import aiohttp
from urllib3.filepost import encode_multipart_formdata

from providers.base import Answer, MailService
from providers.errors import ProviderConfigError
from schemas.message_ids import normalise_message_id
from schemas.model import Mail

# (field name, value) for a plain field, (field name, (filename, content, content type)) for a file part:
# urllib3's multipart shape (the encoder requests uses: the form Mailgun's API and the sandbox are known to take).
FormFields = list[tuple[str, str | tuple[str, bytes, str]]]


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
        self.headers = {"Authorization": aiohttp.encode_basic_auth("api", api_key)}

    def prepare_message(self, mail: Mail) -> FormFields:
        # Mailgun counts an empty `text` or `html` as given, so only non-empty optional fields are sent.
        optional = [("text", mail.content), ("html", mail.html), ("h:Reply-To", mail.reply_to)]
        fields = [
            ("from", mail.sender),
            # Mailgun takes `to`, `cc` and `bcc` repeated or comma-joined; repeating avoids quoting names
            # that contain commas.
            *(("to", recipient) for recipient in mail.recipients),
            *(("cc", address) for address in mail.cc),
            *(("bcc", address) for address in mail.bcc),
            ("subject", mail.subject),
            *((key, value) for key, value in optional if value),
            # `h:` fields become MIME headers of the message, named as given.
            *((f"h:{name}", value) for name, value in mail.headers.items()),
            *(("o:tag", tag) for tag in mail.tags),
            # `v:` fields come back as user-variables in Mailgun's events and webhooks.
            *((f"v:{key}", value) for key, value in mail.metadata.items()),
            ("v:mercury-id", mail.id),
        ]
        files = [("attachment", (a.filename, a.content, a.content_type)) for a in mail.attachments]
        return [*fields, *files]

    async def send_message(self, message: FormFields) -> Answer:
        body, content_type = encode_multipart_formdata(message)
        return await self.post(self.url, body, content_type, self.headers)

    def response_details(self, response: Answer) -> str:
        try:
            message_id = response.json()["id"]
        except (ValueError, KeyError, TypeError):
            return ""
        # The id is the Message-Id header, angle brackets included; events and webhooks report it bare.
        return normalise_message_id(str(message_id))

    def error_detail(self, response: Answer) -> str:
        # Most errors are JSON {"message": ...}, but a bad key gets a bare text "Forbidden".
        try:
            body: Any = response.json()
        except ValueError:
            return super().error_detail(response)
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
        return super().error_detail(response)
