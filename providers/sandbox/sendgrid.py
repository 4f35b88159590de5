"""SendGrid's v3 mail send: Bearer key, JSON body, 202 with an empty body and X-Message-Id."""
import secrets
from typing import Any, ClassVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from providers.sandbox.emulator import Emulator, Invalid, Problem
from providers.sandbox.faults import Faults
from providers.sandbox.mailbox import Received


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class SendGridEmulator(Emulator):
    name = "sendgrid"
    send_path = "/v3/mail/send"
    default_port = 8026
    status_messages: ClassVar[dict[int, str]] = {
        401: "The provided authorization grant is invalid, expired, or revoked",
        403: "access forbidden",
        413: "The JSON payload you have included in your request is too large.",
        429: "too many requests",
        500: "internal error",
    }

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    async def parse(self, request: Request, faults: Faults) -> Received:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise Invalid(Problem("Bad Request")) from None
        if not isinstance(body, dict):
            raise Invalid(Problem("Bad Request"))
        problems: list[Problem] = []
        recipients: list[str] = []
        personalizations = body.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            problems.append(Problem(
                "The personalizations field is required and must have at least one personalization.",
                "personalizations",
            ))
            personalizations = []
        for p, personalization in enumerate(personalizations):
            to = personalization.get("to") if isinstance(personalization, dict) else None
            if not isinstance(to, list) or not to:
                problems.append(Problem(
                    "The to array is required for all personalization objects, and must have at least one "
                    "email object with a valid email address.",
                    f"personalizations.{p}.to",
                ))
                continue
            for r, recipient in enumerate(to):
                address = _text(recipient.get("email")) if isinstance(recipient, dict) else ""
                if not self.deliverable(address, faults):
                    problems.append(Problem("Does not contain a valid address.", f"personalizations.{p}.to.{r}.email"))
                recipients.append(address)
        sender = body.get("from")
        sender_address = _text(sender.get("email")) if isinstance(sender, dict) else ""
        if not sender_address:
            problems.append(Problem(
                "The from object must be provided for every email send. It is an object that requires an email "
                "address, and may contain a name.",
                "from.email",
            ))
        subject = _text(body.get("subject"))
        if not subject:
            problems.append(Problem(
                "The subject is required. You can get around this requirement if you use a template with a "
                "subject defined or if every personalization has a subject defined.",
                "subject",
            ))
        content = body.get("content")
        if not isinstance(content, list) or not content:
            problems.append(Problem(
                "Unless a valid template_id is provided, the content parameter is required. There must be at "
                "least one defined content block.",
                "content",
            ))
            content = []
        text = ""
        for c, block in enumerate(content):
            value = _text(block.get("value")) if isinstance(block, dict) else ""
            if not value:
                problems.append(Problem(
                    "The content value must be a string at least one character in length.", f"content.{c}.value"
                ))
            elif block.get("type") == "text/plain" and not text:
                text = value
        if problems:
            raise Invalid(*problems)
        custom = body.get("custom_args")
        custom = {str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {}
        return Received(sender_address, tuple(recipients), subject, text, custom)

    def new_message_id(self, request: Request) -> str:
        return secrets.token_urlsafe(16)[:22]

    def accepted(self, message_id: str) -> Response:
        return Response(status_code=202, headers={"X-Message-Id": message_id})

    def error_response(self, status: int, problems: list[Problem]) -> Response:
        # Every error, auth and rate limit included, is a JSON list of {message, field, help}.
        errors = [{"message": problem.message, "field": problem.field, "help": None} for problem in problems]
        return Response(orjson.dumps({"errors": errors}), status_code=status, media_type="application/json")
