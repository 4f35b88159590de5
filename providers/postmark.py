"""Postmark: `POST /email`, `X-Postmark-Server-Token`, JSON body, 200 `{"MessageID", "ErrorCode": 0, ...}`.

Postmark answers every refused request with 422 and its own `ErrorCode`; that code, not the HTTP status,
says whether the mail or the account is at fault.
"""
import base64
from typing import Any

from providers.base import Answer, MailService
from providers.errors import PermanentError, ProviderError, ProviderFailure, TransientError
from schemas.message_ids import normalise_message_id
from schemas.model import Mail
from schemas.vocabulary import FailureCause

# Postmark's API error codes that can answer `POST /email` (postmarkapp.com/developer/api/overview#error-codes),
# and whose fault each one is. Codes not listed (and a 422 without a code) are provider failures: an answer
# this adapter does not understand should send the mail elsewhere, never drop it.
#
# | code | Postmark's meaning               | class            | why                                          |
# |------|----------------------------------|------------------|----------------------------------------------|
# | 10   | bad or missing server token      | provider failure | our credentials                              |
# | 100  | maintenance                      | transient        | Postmark is down for a while                 |
# | 300  | invalid email request            | permanent        | the mail's own fields (address, size, body)  |
# | 400  | sender signature not found       | provider failure | the account has no signature for this From   |
# | 401  | sender signature not confirmed   | provider failure | the account's setup, not the mail            |
# | 402  | invalid JSON                     | provider failure | our request shape: every mail would fail     |
# | 403  | incompatible JSON                | provider failure | as 402                                       |
# | 405  | not allowed to send              | provider failure | the account ran out of credits               |
# | 406  | inactive recipient               | permanent        | the address bounced or complained before     |
# | 409  | JSON required                    | provider failure | as 402                                       |
# | 411  | forbidden attachment type        | permanent        | the mail's attachment                        |
# | 412  | account is pending               | provider failure | the account is not approved yet              |
# | 413  | account may not send             | provider failure | the account is suspended                     |
# | 429  | rate limit exceeded              | throttled        | (Postmark sends it with HTTP 429)            |
#
# 300 also covers a From address outside the server's sender signatures ("Invalid 'From' address"); the
# mail is dead-lettered then, which an operator sees at once, rather than counting it against the breaker.
PERMANENT_CODES = frozenset({300, 406, 411})
TRANSIENT_CODES = frozenset({100})


class Postmark(MailService):
    name = "postmark"
    full_name = "Postmark"

    def __init__(
        self, base_url: str, server_token: str, *, connect_timeout: float = 2.0, read_timeout: float = 10.0
    ) -> None:
        super().__init__(base_url, server_token, connect_timeout=connect_timeout, read_timeout=read_timeout)
        self.url = f"{self.base_url}/email"
        self.headers = {"X-Postmark-Server-Token": server_token}

    def prepare_message(self, mail: Mail) -> dict[str, Any]:
        metadata = {**mail.metadata, "mercury_id": mail.id}
        if len(mail.tags) > 1:
            # Postmark takes one tag per message: the first is the Tag, and every tag travels in the metadata.
            metadata["mercury_tags"] = ",".join(mail.tags)
        message: dict[str, Any] = {
            "From": mail.sender,
            # Postmark takes each address list as one comma-separated string.
            "To": ", ".join(mail.recipients),
            "Subject": mail.subject,
            # Postmark keeps these in its events and webhooks, as Mailgun's `v:` and SendGrid's custom_args.
            "Metadata": metadata,
            "MessageStream": "outbound",
        }
        optional = {
            "Cc": ", ".join(mail.cc),
            "Bcc": ", ".join(mail.bcc),
            "TextBody": mail.content,
            "HtmlBody": mail.html,
            "ReplyTo": mail.reply_to,
            "Tag": mail.tags[0] if mail.tags else "",
        }
        message.update({key: value for key, value in optional.items() if value})
        if mail.headers:
            message["Headers"] = [{"Name": name, "Value": value} for name, value in mail.headers.items()]
        if mail.attachments:
            message["Attachments"] = [
                {
                    "Name": attachment.filename,
                    "Content": base64.b64encode(attachment.content).decode("ascii"),
                    "ContentType": attachment.content_type,
                }
                for attachment in mail.attachments
            ]
        return message

    async def send_message(self, message: dict[str, Any]) -> Answer:
        return await self.post_json(self.url, message, self.headers)

    def response_details(self, response: Answer) -> str:
        try:
            message_id = response.json()["MessageID"]
        except (ValueError, KeyError, TypeError):
            return ""
        return normalise_message_id(str(message_id))

    def error_detail(self, response: Answer) -> str:
        # Errors are {"ErrorCode": n, "Message": ...}; a proxy in front of the API may answer HTML instead.
        code, message = _error_fields(response)
        if message:
            return f"{message} (ErrorCode {code})" if code is not None else message
        return super().error_detail(response)

    def error_for(self, response: Answer) -> ProviderError:
        if response.status_code != 422:
            return super().error_for(response)
        code, _ = _error_fields(response)
        status, body, detail = response.status_code, response.text, self.error_detail(response)
        if code in PERMANENT_CODES:
            return PermanentError(self.name, detail, status=status, body=body)
        if code in TRANSIENT_CODES:
            return TransientError(self.name, detail, cause=FailureCause.PROVIDER, status=status, body=body)
        return ProviderFailure(self.name, detail, status=status, body=body)


def _error_fields(response: Answer) -> tuple[int | None, str]:
    """Postmark's `ErrorCode` and `Message`, or (None, "") when the body is not Postmark's error JSON."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("ErrorCode")
    return (code if isinstance(code, int) and not isinstance(code, bool) else None), str(body.get("Message") or "")
