"""Any SMTP relay, through the standard library: one connection per mail, STARTTLS, implicit TLS or plain.

The conversation is driven command by command (EHLO, STARTTLS, AUTH, MAIL, RCPT per recipient, DATA) so
that each reply is classified where it comes: a refused recipient refuses only that recipient, and only
a failure after the message's final "." can leave the relay holding the mail (ambiguous).

smtplib blocks, so each conversation runs in a thread of the adapter's own bounded pool and `send` stays a
coroutine like every adapter's; a send beyond the pool's threads waits for one.
"""
import asyncio
import logging
import re
import smtplib
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any, ClassVar

from providers.base import ProviderAdapter, SendResult
from providers.errors import (
    AmbiguousError,
    PermanentError,
    ProviderConfigError,
    ProviderError,
    ProviderFailure,
    ThrottledError,
    TransientError,
)
from schemas.control.provider_settings import LOOPBACK_HOSTS, SECURITY_MODES, Security
from schemas.message_ids import normalise_message_id
from schemas.model import Mail
from schemas.vocabulary import FailureCause

log = logging.getLogger("mercury.providers.smtp")

# How each SMTP reply is classified (RFC 5321 reply codes, RFC 3463 enhanced status codes):
#
# | reply                                   | class            | why                                             |
# |-----------------------------------------|------------------|-------------------------------------------------|
# | 4xx with enhanced status 4.7.x          | throttled        | rate limit, greylisting, "too many connections" |
# | other 4xx (421, 450, 451, 452, ...)     | transient        | the relay's own temporary trouble               |
# | 530, 534, 535, 538 (authentication)     | provider failure | our credentials or TLS settings                 |
# | 5xx with enhanced status 5.7.x          | provider failure | a policy refusal: relaying denied, sender not   |
# |                                         |                  | authorised, reputation; another provider may    |
# |                                         |                  | deliver, and a wrong "permanent" loses the mail |
# | 550, 551, 552, 553, 554                 | permanent        | mailbox unknown, address refused, too large,    |
# |                                         |                  | transaction refused: the mail itself            |
# | any other reply                         | provider failure | an answer this adapter does not understand      |
#
# RCPT replies refuse one recipient each: any 5xx there (syntax 501 included) refuses the address for
# good, a 4xx defers it. The send goes on for the accepted recipients and reports the others in
# SendResult.refused; only when every recipient is refused does the send fail, with the most hopeful
# class among the refusals (transient, then provider failure, then permanent).
AUTH_CODES = frozenset({530, 534, 535, 538})
PERMANENT_CODES = frozenset({550, 551, 552, 553, 554})
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# Lines of the message that start with "." get a second one (RFC 5321 4.5.2).
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
# CRLF line endings, and 7-bit bodies (quoted-printable or base64): no reliance on the relay's 8BITMIME.
_POLICY = SMTP.clone(cte_type="7bit")


@dataclass(frozen=True, slots=True)
class Envelope:
    """The prepared mail: SMTP envelope addresses and the message bytes, CRLF line endings."""

    sender: str
    recipients: tuple[str, ...]
    content: bytes
    message_id: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """The relay's acceptance: its final DATA reply and the recipients it refused on the way."""

    code: int
    reply: str
    message_id: str
    refused: dict[str, tuple[int, str]]


class SmtpRelay(ProviderAdapter):
    name = "smtp"
    full_name = "SMTP relay"
    # smtplib's exceptions (replies and disconnects) are OSErrors, as are socket, TLS and timeout errors.
    failure_types: ClassVar[tuple[type[Exception], ...]] = (OSError,)

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security = "starttls",
        username: str = "",
        password: str = "",
        ca_file: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        threads: int = 16,
    ) -> None:
        """Raises ProviderConfigError for a bad host, port, security mode or thread count, or a password that
        would cross the network in clear. `threads` bounds the conversations held at once."""
        super().__init__(connect_timeout=connect_timeout, read_timeout=read_timeout)
        if threads < 1:
            raise ProviderConfigError(f"smtp: {threads} threads cannot send")
        if not host or any(c.isspace() for c in host):
            raise ProviderConfigError(f"smtp: host {host!r} is not a host name")
        if not 0 < port < 65536:
            raise ProviderConfigError(f"smtp: port {port} is not a TCP port")
        if security not in SECURITY_MODES:
            raise ProviderConfigError(f"smtp: security {security!r} is not one of {', '.join(SECURITY_MODES)}")
        if username and security == "none" and host not in LOOPBACK_HOSTS:
            raise ProviderConfigError(f"smtp: AUTH to {host} without TLS would send the password in clear")
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.tls_context = ssl.create_default_context(cafile=ca_file) if security != "none" else None
        # smtplib would look the name up for every EHLO; once per process is enough.
        self.local_hostname = socket.getfqdn()
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="smtp")

    def __repr__(self) -> str:
        return f"SmtpRelay({self.host!r}, {self.port}, security={self.security!r})"

    def prepare_message(self, mail: Mail) -> Envelope:
        message = EmailMessage(policy=_POLICY)
        domain = parseaddr(mail.sender)[1].rpartition("@")[2] or "mercury.invalid"
        message_id = make_msgid(domain=domain)
        message["From"] = mail.sender
        message["To"] = ", ".join(mail.recipients)
        if mail.cc:
            message["Cc"] = ", ".join(mail.cc)
        if mail.reply_to:
            message["Reply-To"] = mail.reply_to
        message["Subject"] = mail.subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id
        # Plain SMTP has no tags or metadata: they travel as headers, like the mail id, for whoever reads them.
        message["X-Mercury-Id"] = mail.id
        if mail.tags:
            message["X-Mercury-Tags"] = ", ".join(mail.tags)
        for key, value in mail.metadata.items():
            message[f"X-Mercury-Meta-{key}"] = value
        for name, value in mail.headers.items():
            message[name] = value
        if mail.content:
            message.set_content(mail.content)
            if mail.html:
                message.add_alternative(mail.html, subtype="html")
        else:
            message.set_content(mail.html, subtype="html")
        for attachment in mail.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            message.add_attachment(
                attachment.content, maintype=maintype, subtype=subtype or "octet-stream", filename=attachment.filename
            )
        # Bcc recipients are in the envelope only, never in a header the others can read.
        recipients = tuple(dict.fromkeys((*mail.recipients, *mail.cc, *mail.bcc)))
        content = message.as_bytes()
        if not content.endswith(b"\r\n"):
            content += b"\r\n"
        return Envelope(parseaddr(mail.sender)[1], recipients, content, normalise_message_id(message_id))

    async def send_message(self, message: Envelope) -> Receipt:
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._converse, message)

    def close(self) -> None:
        """Let the threads end with the conversations under way (each within its timeout) without waiting for
        them: the dispatcher retires an adapter from its event loop."""
        self._threads.shutdown(wait=False)

    def _converse(self, message: Envelope) -> Receipt:
        """One SMTP conversation. Every step has what is left of the read timeout, so the whole send ends
        within connect plus read timeout however many recipients it has."""
        read_timeout = self.timeout[1]
        client = self._connect()
        accepted = False
        try:
            deadline = time.monotonic() + read_timeout

            def step() -> None:
                client.sock.settimeout(max(deadline - time.monotonic(), 0.001))

            step()
            client.ehlo()
            if self.security == "starttls":
                client.starttls(context=self.tls_context)
                step()
                client.ehlo()
            if self.username:
                client.login(self.username, self.password)
            code, reply = client.mail(message.sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, message.sender)
            refused: dict[str, tuple[int, str]] = {}
            for recipient in message.recipients:
                step()
                code, reply = client.rcpt(recipient)
                if code not in (250, 251):
                    refused[recipient] = (code, _text(reply))
            if len(refused) == len(message.recipients):
                raise self._every_recipient_refused(refused)
            step()
            code, reply = client.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPDataError(code, reply)
            client.send(_LEADING_DOT.sub(b"..", message.content) + b".\r\n")
            step()
            try:
                code, reply = client.getreply()
            except OSError as err:
                # The whole message and its final "." went out: the relay may have queued it.
                raise AmbiguousError(self.name, f"no reply to the end of DATA within {read_timeout}s") from err
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
            accepted = True
            return Receipt(code, _text(reply), message.message_id, refused)
        finally:
            if accepted:
                _quit(client)
            client.close()

    def _connect(self) -> smtplib.SMTP:
        """Connect and read the greeting within the connect timeout (TLS handshake included for implicit TLS)."""
        if self.security == "tls":
            return smtplib.SMTP_SSL(
                self.host, self.port, self.local_hostname, timeout=self.timeout[0], context=self.tls_context
            )
        return smtplib.SMTP(self.host, self.port, self.local_hostname, timeout=self.timeout[0])

    def result(self, answer: Receipt, latency_ms: float) -> SendResult:
        if answer.refused:
            log.warning("recipients_refused", extra={
                "provider": self.name, "message_id": answer.message_id,
                "refused": ",".join(f"{address}:{code}" for address, (code, _) in answer.refused.items()),
            })
        return SendResult(self.name, answer.message_id, answer.code, latency_ms, tuple(answer.refused))

    def classify_failure(self, err: Exception) -> ProviderError:
        if isinstance(err, ssl.SSLCertVerificationError):
            return ProviderFailure(self.name, f"TLS certificate not trusted: {err.verify_message}")
        if isinstance(err, smtplib.SMTPResponseException):
            return classify_reply(self.name, err.smtp_code, _text(err.smtp_error))
        if isinstance(err, smtplib.SMTPServerDisconnected) or not isinstance(err, smtplib.SMTPException):
            # Refused, reset, DNS failure, a timeout or a dropped connection before the mail went out.
            return TransientError(self.name, f"{type(err).__name__}: {err}", cause=FailureCause.NETWORK)
        # STARTTLS or AUTH not offered, no common AUTH mechanism: the relay is not set up as configured.
        return ProviderFailure(self.name, f"{type(err).__name__}: {err}")

    def _every_recipient_refused(self, refused: dict[str, tuple[int, str]]) -> ProviderError:
        detail = "every recipient refused: " + "; ".join(f"{a}: {c} {t}" for a, (c, t) in refused.items())
        errors = [
            classify_reply(self.name, code, text, recipient=True, detail=detail) for code, text in refused.values()
        ]
        for kind in (TransientError, ProviderFailure, PermanentError):
            chosen = next((error for error in errors if isinstance(error, kind)), None)
            if chosen is not None:
                return chosen
        return errors[0]


def classify_reply(
    provider: str, code: int, text: str, *, recipient: bool = False, detail: str = ""
) -> ProviderError:
    """The error class of a negative SMTP reply (table above); `recipient` for a reply to RCPT."""
    enhanced = _ENHANCED.match(text)
    policy = enhanced is not None and enhanced.group(2) == "7"
    detail = detail or f"{code} {text}".strip()
    fields: dict[str, Any] = {"status": code, "body": text, "protocol": "SMTP"}
    if 400 <= code < 500:
        if policy:
            return ThrottledError(provider, detail, retry_after=None, **fields)
        return TransientError(provider, detail, cause=FailureCause.PROVIDER, **fields)
    if code in AUTH_CODES or (500 <= code < 600 and policy):
        return ProviderFailure(provider, detail, **fields)
    if code in PERMANENT_CODES or (recipient and 500 <= code < 600):
        return PermanentError(provider, detail, **fields)
    return ProviderFailure(provider, detail, **fields)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _quit(client: smtplib.SMTP) -> None:
    """Say goodbye after an accepted mail; the mail is the relay's now, so a failing QUIT changes nothing."""
    try:
        client.quit()
    except OSError as err:
        log.debug("quit_failed", extra={"provider": "smtp", "error": str(err)})
