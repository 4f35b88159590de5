"""`python -m providers.sandbox`: every emulated provider on its own port, plus the control port.

Settings come from argv, else from SANDBOX_* environment variables, else the defaults that
providers.config points at. A provider given a webhook URL (and its signing secret) posts signed event
webhooks there for every message it accepts. The SMTP relay offers TLS when given a certificate.
Stops cleanly on SIGTERM or SIGINT.
"""
import argparse
import asyncio
import os
import signal
import ssl
import sys

import uvloop

from providers.sandbox import logs
from providers.sandbox.control import control_app
from providers.sandbox.emulator import Emulator
from providers.sandbox.host import ProviderHost
from providers.sandbox.listener import Listener
from providers.sandbox.mailgun import MailgunEmulator
from providers.sandbox.mailgun_webhooks import MailgunWebhooks
from providers.sandbox.postmark import PostmarkEmulator
from providers.sandbox.sendgrid import SendGridEmulator
from providers.sandbox.sendgrid_webhooks import SendGridWebhooks
from providers.sandbox.smtp import SmtpEmulator, SmtpHost
from providers.sandbox.webhooks import WebhookEmitter, WebhookFormat

EMULATORS: dict[str, type[Emulator]] = {
    cls.name: cls for cls in (MailgunEmulator, SendGridEmulator, PostmarkEmulator)
}
PORTS = {**{name: cls.default_port for name, cls in EMULATORS.items()}, SmtpEmulator.name: SmtpEmulator.default_port}
WEBHOOK_FORMATS = {"mailgun": MailgunWebhooks, "sendgrid": SendGridWebhooks}
CONTROL_PORT = 8029


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m providers.sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=env.get("SANDBOX_HOST", "127.0.0.1"))
    for name, port in PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=env.get(f"SANDBOX_{name.upper()}_PORT", str(port)))
    parser.add_argument("--smtp-tls-cert", default=env.get("SANDBOX_SMTP_TLS_CERT", ""),
                        help="PEM certificate chain: the SMTP relay then offers TLS")
    parser.add_argument("--smtp-tls-key", default=env.get("SANDBOX_SMTP_TLS_KEY", ""),
                        help="PEM private key of --smtp-tls-cert")
    parser.add_argument("--smtp-tls", choices=("starttls", "implicit"), default=env.get("SANDBOX_SMTP_TLS", "starttls"),
                        help="with a certificate: offer STARTTLS, or speak TLS from the first byte")
    parser.add_argument("--control-port", type=int, default=env.get("SANDBOX_CONTROL_PORT", str(CONTROL_PORT)))
    parser.add_argument(
        "--api-key", default=env.get("SANDBOX_API_KEY", "sandbox-key"), help="the key every provider accepts"
    )
    parser.add_argument(
        "--keep", type=int, default=env.get("SANDBOX_KEEP", "100000"), help="messages kept per provider"
    )
    for name, fmt in WEBHOOK_FORMATS.items():
        parser.add_argument(f"--{name}-webhook-url", default=env.get(f"SANDBOX_WEBHOOK_URL_{name.upper()}", ""),
                            help=f"where {name} posts its event webhooks (none: no webhooks)")
        secret_env = f"SANDBOX_{name.upper()}_WEBHOOK_{fmt.secret_name.upper().replace('-', '_')}"
        parser.add_argument(f"--{name}-webhook-{fmt.secret_name}", default=env.get(secret_env, ""),
                            help=f"what {name} signs its webhooks with (better given as {secret_env})")
    parser.add_argument("--webhook-delay-ms", type=float, default=env.get("SANDBOX_WEBHOOK_DELAY_MS", "200"),
                        help="time from acceptance to a message's first webhook")
    args = parser.parse_args(argv)
    if args.keep < 0:
        parser.error("--keep must be 0 or more")
    if args.webhook_delay_ms < 0:
        parser.error("--webhook-delay-ms must be 0 or more")
    if bool(args.smtp_tls_cert) != bool(args.smtp_tls_key):
        parser.error("--smtp-tls-cert and --smtp-tls-key go together")
    try:
        args.webhook_formats = webhook_formats(args)
    except ValueError as err:
        parser.error(str(err))
    return args


def smtp_emulator(args: argparse.Namespace) -> SmtpEmulator:
    """The SMTP relay, with a server TLS context when given a certificate (raises OSError for an unreadable one)."""
    if not args.smtp_tls_cert:
        return SmtpEmulator(args.api_key, args.keep)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.smtp_tls_cert, args.smtp_tls_key)
    return SmtpEmulator(args.api_key, args.keep, context, implicit_tls=args.smtp_tls == "implicit")


def webhook_formats(args: argparse.Namespace) -> dict[str, WebhookFormat]:
    """The signing webhook format of every provider given a webhook URL; ValueError for a missing or bad secret."""
    formats: dict[str, WebhookFormat] = {}
    for name, fmt in WEBHOOK_FORMATS.items():
        if not getattr(args, f"{name}_webhook_url"):
            continue
        secret = getattr(args, f"{name}_webhook_{fmt.secret_name.replace('-', '_')}")
        if not secret:
            raise ValueError(f"--{name}-webhook-url needs --{name}-webhook-{fmt.secret_name}")
        formats[name] = fmt(secret)
    return formats


async def serve(args: argparse.Namespace) -> None:
    hosts = [
        ProviderHost(cls(args.api_key, args.keep), args.host, getattr(args, f"{name}_port"))
        for name, cls in EMULATORS.items()
    ]
    hosts.append(SmtpHost(smtp_emulator(args), args.host, args.smtp_port))
    emitters = [
        WebhookEmitter(name, getattr(args, f"{name}_webhook_url"), fmt, args.webhook_delay_ms / 1000)
        for name, fmt in args.webhook_formats.items()
    ]
    for emitter in emitters:
        next(host for host in hosts if host.name == emitter.provider).emulator.webhooks = emitter
    control = Listener(control_app(hosts), args.host, args.control_port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        for emitter in emitters:
            emitter.start()
        for host in hosts:
            await host.start()
        # Logged before the control port opens: nothing can change a fault (and log it) ahead of this line.
        logs.event(
            "sandbox.started",
            pid=os.getpid(),
            host=args.host,
            control_port=args.control_port,
            providers=",".join(f"{host.name}:{host.port}" for host in hosts),
        )
        await control.open()
        await stopping.wait()
        logs.event("sandbox.stopping")
    finally:
        await asyncio.gather(control.close(), *(host.stop() for host in hosts))
        await asyncio.gather(*(emitter.stop() for emitter in emitters))
    logs.event("sandbox.stopped")


def main(argv: list[str] | None = None) -> int:
    logs.setup()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        uvloop.run(serve(args))
    except OSError as err:
        logs.event("sandbox.failed", error=str(err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
