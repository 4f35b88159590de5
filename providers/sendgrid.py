"""SendGrid: `POST /v3/mail/send`, Bearer key, JSON body, 202 with an empty body and the id in a header."""
from typing import Any

import requests

from providers.base import MailService
from schemas.message_ids import normalise_message_id
from schemas.model import Mail


class SendGrid(MailService):
    name = "sendgrid"
    full_name = "SendGrid"

    def __init__(
        self, base_url: str, api_key: str, *, connect_timeout: float = 2.0, read_timeout: float = 10.0
    ) -> None:
        super().__init__(base_url, api_key, connect_timeout=connect_timeout, read_timeout=read_timeout)
        self.url = f"{self.base_url}/v3/mail/send"
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def prepare_message(self, mail: Mail) -> dict[str, Any]:
        return {
            # One personalization: every recipient sees the others on To, as with Mailgun's `to` list.
            "personalizations": [{"to": [{"email": recipient} for recipient in mail.recipients]}],
            "from": {"email": mail.sender},
            "subject": mail.subject,
            "content": [{"type": "text/plain", "value": mail.content}],
            # custom_args come back on every event webhook for this message.
            "custom_args": {"mercury_id": mail.id},
        }

    def send_message(self, message: dict[str, Any]) -> requests.Response:
        return self.post(self.url, json=message, headers=self.headers)

    def response_details(self, response: requests.Response) -> str:
        # Success is 202 with an empty body: the only trace of the message is the X-Message-Id header,
        # which webhooks report as the start of `sg_message_id`.
        return normalise_message_id(response.headers.get("X-Message-Id", ""))

    def error_detail(self, response: requests.Response) -> str:
        # Errors are {"errors": [{"message": ..., "field": ...}, ...]}, one entry per problem found.
        try:
            errors = response.json()["errors"]
            details = [
                f"{error['field']}: {error['message']}" if error.get("field") else str(error["message"])
                for error in errors
            ]
        except (ValueError, KeyError, TypeError):
            return super().error_detail(response)
        return "; ".join(details) or super().error_detail(response)
