"""An SMTP relay (aiosmtpd) on its own port: AUTH PLAIN/LOGIN with the sandbox key, STARTTLS or implicit TLS
when given a certificate, and the sandbox's faults spoken as SMTP replies.

What it accepts lands in the same mailbox shape as the HTTP providers, so `/sandbox/smtp/messages` lists it.
Faults: `error_rate` answers MAIL FROM with `status` read as an SMTP reply (HTTP statuses are translated,
see REPLIES); `reject_recipients` refuses those RCPTs with 550; `latency_ms` and `timeout` delay or withhold
the reply to the end of DATA, after the message is stored; `down` closes the port and every connection.
"""
import asyncio
import logging
import ssl
import uuid
import warnings
import weakref
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from providers.sandbox.emulator import HOLD_LIMIT_S, valid_address
from providers.sandbox.faults import Faults
from providers.sandbox.host import ProviderHost
from providers.sandbox.mailbox import Mailbox, Received, ReceivedFile
from schemas.message_ids import normalise_message_id

HOSTNAME = "sandbox.mercury.local"
# aiosmtpd logs every command (and a deprecation warning per AUTH); the sandbox never logs per send.
logging.getLogger("mail.log").setLevel(logging.ERROR)
# AUTH over a plain connection is what a sandbox without a certificate offers, on purpose.
warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning, "aiosmtpd")
# The reply an injected `status` gets. SMTP's own codes stand for themselves; HTTP statuses the other
# providers' faults use are translated to the SMTP reply that means the same: 429 a rate limit, 5xx an outage.
REPLIES = {
    421: "421 4.3.2 Service not available, closing transmission channel",
    450: "450 4.2.1 Mailbox temporarily unavailable",
    451: "451 4.3.0 Local error in processing",
    452: "452 4.3.1 Insufficient system storage",
    530: "530 5.7.0 Authentication required",
    535: "535 5.7.8 Authentication credentials invalid",
    550: "550 5.7.1 Sender address rejected: not owned by user",
    552: "552 5.3.4 Message size exceeds fixed limit",
    553: "553 5.1.8 Sender address rejected: domain not found",
    554: "554 5.7.1 Relay access denied",
    429: "451 4.7.1 Rate limit exceeded, try again later",
    401: "535 5.7.8 Authentication credentials invalid",
    403: "554 5.7.1 Relay access denied",
    413: "552 5.3.4 Message size exceeds fixed limit",
}
OUTAGE_REPLY = REPLIES[421]
# Headers the relay reads into the mailbox's own fields rather than listing as custom headers.
_OWN_HEADERS = frozenset({
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", "mime-version", "content-type",
    "content-transfer-encoding",
})
_MERCURY_META = "x-mercury-meta-"


def reply_for(status: int) -> str:
    if status in REPLIES:
        return REPLIES[status]
    return OUTAGE_REPLY if status >= 500 else REPLIES[451]


class SmtpEmulator:
    """The relay's behaviour, as aiosmtpd handler hooks; the faults and mailbox the sandbox drives."""

    name = "smtp"
    default_port = 8028

    def __init__(self, api_key: str, keep: int, tls: ssl.SSLContext | None = None, implicit_tls: bool = False) -> None:
        self.api_key = api_key.encode()
        self.faults = Faults()
        self.mailbox = Mailbox(keep)
        self.tls, self.implicit_tls = tls, implicit_tls
        self._release = asyncio.Event()

    def release_held(self) -> None:
        """Answer every held DATA now, so that closing the port never waits on one."""
        self._release.set()
        self._release = asyncio.Event()

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        """PLAIN and LOGIN: any user name, the sandbox key as password."""
        ok = isinstance(data, LoginPassword) and bool(data.login) and data.password == self.api_key
        return AuthResult(success=ok, handled=False)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if self.faults.fails_now():
            return reply_for(self.faults.status)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if not valid_address(address):
            return f"553 5.1.3 <{address}>: Recipient address rejected: bad address syntax"
        if self.faults.rejects(address):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        faults = self.faults
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content or b"")
        message_id = normalise_message_id(str(message["Message-ID"] or "")) or f"{uuid.uuid4()}@{HOSTNAME}"
        self.mailbox.add(message_id, received(message, envelope))
        if faults.timeout:
            release = self._release
            try:
                # A client that hangs up cancels this handler; otherwise the port closing or the bound ends it.
                await asyncio.wait_for(release.wait(), HOLD_LIMIT_S)
            except TimeoutError:
                pass
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        return f"250 2.0.0 Ok: queued as {message_id}"


def received(message: EmailMessage, envelope: Envelope) -> Received:
    """The mailbox entry: header fields, bodies and attachments, and the recipients the relay took."""
    taken = set(envelope.rcpt_tos)

    def addresses(header: str) -> tuple[str, ...]:
        return tuple(a for _, a in getaddresses(message.get_all(header, [])) if a in taken)

    to, cc = addresses("To"), addresses("Cc")
    bcc = tuple(a for a in envelope.rcpt_tos if a not in to and a not in cc)
    custom, headers = {}, {}
    for name, value in message.items():
        lowered = name.lower()
        if lowered == "x-mercury-id":
            custom["mercury-id"] = str(value)
        elif lowered.startswith(_MERCURY_META):
            custom[name[len(_MERCURY_META):]] = str(value)
        elif lowered != "x-mercury-tags" and lowered not in _OWN_HEADERS:
            headers[name] = str(value)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    tags = str(message.get("X-Mercury-Tags", ""))
    return Received(
        envelope.mail_from or "",
        to,
        str(message.get("Subject", "")),
        _body(text),
        custom,
        html=_body(html),
        cc=cc,
        bcc=bcc,
        reply_to=str(message.get("Reply-To", "")),
        headers=headers,
        attachments=tuple(
            ReceivedFile.of(part.get_filename() or "", part.get_content_type(), part.get_payload(decode=True) or b"")
            for part in message.iter_attachments()
        ),
        tags=tuple(tag.strip() for tag in tags.split(",") if tag.strip()),
    )


def _body(part: EmailMessage | None) -> str:
    """A text part as the sender wrote it: LF line ends, without the final newline MIME adds."""
    if part is None:
        return ""
    return str(part.get_content()).replace("\r\n", "\n").removesuffix("\n")


class SmtpListener:
    """The relay's port: closing it refuses new connections and drops the open ones, as "down" wants."""

    def __init__(self, emulator: SmtpEmulator, host: str, port: int) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    @property
    def is_open(self) -> bool:
        return self._server is not None

    def _session(self) -> SMTP:
        emulator = self.emulator
        session = SMTP(
            emulator,
            hostname=HOSTNAME,
            tls_context=None if emulator.implicit_tls else emulator.tls,
            auth_required=True,
            # The sandbox also runs without a certificate, so AUTH is allowed over plain connections.
            auth_require_tls=False,
            authenticator=emulator.authenticate,
            timeout=HOLD_LIMIT_S,
        )
        self._sessions.add(session)
        return session

    async def open(self) -> None:
        """Bind and serve; raises OSError if the port cannot be bound."""
        ssl_context = self.emulator.tls if self.emulator.implicit_tls else None
        self._server = await asyncio.get_running_loop().create_server(
            self._session, self.host, self.port, ssl=ssl_context, reuse_address=True
        )

    async def close(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await server.wait_closed()


class SmtpHost(ProviderHost):
    """The SMTP relay under the sandbox's control: faults and mailbox through the control port only."""

    def listen(self, host: str, port: int) -> SmtpListener:
        return SmtpListener(cast(SmtpEmulator, self.emulator), host, port)
