"""SendGrid: `POST /v3/mail/send`, Bearer key, JSON body, 202 with an empty body and the id in a header."""
import base64
from collections.abc import Iterable
from typing import Any

from providers.base import Answer, MailService
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
        # One personalization: every recipient sees the others on To, as with Mailgun's `to` list. SendGrid
        # refuses an empty cc or bcc list, so they are left out when there are none.
        personalization: dict[str, Any] = {"to": _emails(mail.recipients)}
        if mail.cc:
            personalization["cc"] = _emails(mail.cc)
        if mail.bcc:
            personalization["bcc"] = _emails(mail.bcc)
        message: dict[str, Any] = {
            "personalizations": [personalization],
            "from": {"email": mail.sender},
            "subject": mail.subject,
            # SendGrid wants text/plain first, then text/html, and refuses an empty value.
            "content": [
                {"type": kind, "value": value}
                for kind, value in (("text/plain", mail.content), ("text/html", mail.html)) if value
            ],
            # custom_args come back on every event webhook for this message.
            "custom_args": {**mail.metadata, "mercury_id": mail.id},
        }
        if mail.reply_to:
            message["reply_to"] = {"email": mail.reply_to}
        if mail.headers:
            message["headers"] = dict(mail.headers)
        if mail.tags:
            message["categories"] = list(mail.tags)
        if mail.attachments:
            message["attachments"] = [
                {"content": base64.b64encode(a.content).decode("ascii"), "type": a.content_type,
                 "filename": a.filename, "disposition": "attachment"}
                for a in mail.attachments
            ]
        return message

    async def send_message(self, message: dict[str, Any]) -> Answer:
        return await self.post_json(self.url, message, self.headers)

    def response_details(self, response: Answer) -> str:
        # Success is 202 with an empty body: the only trace of the message is the X-Message-Id header,
        # which webhooks report as the start of `sg_message_id`.
        return normalise_message_id(response.headers.get("X-Message-Id", ""))

    def error_detail(self, response: Answer) -> str:
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


def _emails(addresses: Iterable[str]) -> list[dict[str, str]]:
    return [{"email": address} for address in addresses]
