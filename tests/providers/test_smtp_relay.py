"""The SMTP relay adapter against the sandbox's SMTP port: each reply class, TLS both ways, partial refusals."""
import datetime
import ipaddress
import smtplib
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from loop_thread import Run
from sandbox_client import HOST, Sandbox, sandbox_process

from deploy.processes import free_port, port_open
from providers import (
    AmbiguousError,
    PermanentError,
    ProviderConfigError,
    ProviderError,
    ProviderFailure,
    ThrottledError,
    TransientError,
    load_providers,
)
from providers.config import ADAPTERS
from schemas.model import Attachment, Mail
from schemas.vocabulary import FailureCause, Outcome


def mail(recipients: tuple[str, ...] = ("ada@example.com",), **fields: object) -> Mail:
    defaults: dict = {"id": str(uuid.uuid4()), "sender": "noreply@mercury.example", "subject": "Hello",
                      "content": "Body of Hello", "created_at": int(time.time() * 1000)}
    return Mail(recipients=recipients, **{**defaults, **fields})


def test_accepted_send_reports_the_message_id_header(sandbox: Sandbox, run: Run) -> None:
    sent = mail(("ada@example.com", "grace@example.org"))

    result = run(sandbox.service("smtp").send(sent))

    assert (result.provider, result.status, result.refused) == ("smtp", 250, ())
    assert "@mercury.example" in result.message_id and result.latency_ms > 0
    [received] = sandbox.messages("smtp")
    assert received["id"] == result.message_id
    assert received["recipients"] == list(sent.recipients)
    assert (received["sender"], received["subject"], received["text"]) == (sent.sender, sent.subject, sent.content)
    assert received["custom"] == {"mercury-id": sent.id}


def test_every_field_becomes_mime(sandbox: Sandbox, run: Run) -> None:
    sent = mail(
        ("Ada <ada@example.com>",), cc=("cc@example.com",), bcc=("bcc@example.com",), html="<p>Hi</p>",
        reply_to="replies@mercury.example", headers={"X-Campaign": "spring"}, tags=("welcome", "spring"),
        attachments=(Attachment("report.pdf", "application/pdf", b"%PDF-1.7\n.leading dot"),),
        metadata={"customer": "42"},
    )

    run(sandbox.service("smtp").send(sent))

    [received] = sandbox.messages("smtp")
    assert received["recipients"] == ["ada@example.com"]
    # Bcc travels in the envelope only: the relay got it, the headers do not show it.
    assert (received["cc"], received["bcc"]) == (["cc@example.com"], ["bcc@example.com"])
    assert (received["text"], received["html"], received["reply_to"]) == (sent.content, "<p>Hi</p>", sent.reply_to)
    assert received["headers"] == {"X-Campaign": "spring"}
    assert received["tags"] == ["welcome", "spring"]
    assert received["custom"] == {"mercury-id": sent.id, "customer": "42"}
    [attachment] = received["attachments"]
    assert (attachment["filename"], attachment["size"]) == ("report.pdf", len(sent.attachments[0].content))


def test_a_body_line_starting_with_a_dot_arrives_whole(sandbox: Sandbox, run: Run) -> None:
    run(sandbox.service("smtp").send(mail(content="first\n.\n.second")))

    assert sandbox.messages("smtp")[0]["text"] == "first\n.\n.second"


def test_wrong_password_is_a_provider_failure(sandbox: Sandbox, run: Run) -> None:
    with pytest.raises(ProviderFailure) as caught:
        run(sandbox.service("smtp", api_key="wrong-key").send(mail()))

    assert (caught.value.status, caught.value.protocol) == (535, "SMTP")
    assert str(caught.value).endswith("(SMTP 535)")
    assert isinstance(caught.value.__cause__, smtplib.SMTPAuthenticationError)
    assert sandbox.messages("smtp") == []


def test_no_credentials_is_a_provider_failure(sandbox: Sandbox, run: Run) -> None:
    """The relay wants AUTH first: 530 at MAIL FROM."""
    with pytest.raises(ProviderFailure) as caught:
        run(sandbox.service("smtp", SMTP_USERNAME="").send(mail()))

    assert caught.value.status == 530


@pytest.mark.parametrize(
    "status, reply, expected",
    [
        (421, 421, TransientError),
        (450, 450, TransientError),
        (451, 451, TransientError),
        (452, 452, TransientError),
        (503, 421, TransientError),  # an HTTP outage status means the relay's outage
        (429, 451, ThrottledError),  # 451 4.7.1: rate limited
        (530, 530, ProviderFailure),
        (535, 535, ProviderFailure),
        (550, 550, ProviderFailure),  # 550 5.7.1: a policy refusal of the sender
        (554, 554, ProviderFailure),  # 554 5.7.1: relaying denied
        (552, 552, PermanentError),  # 552 5.3.4: too large
        (553, 553, PermanentError),
    ],
)
def test_each_reply_is_classified(
    sandbox: Sandbox, status: int, reply: int, expected: type[ProviderError], run: Run
) -> None:
    sandbox.set_faults("smtp", error_rate=1.0, status=status)

    with pytest.raises(expected) as caught:
        run(sandbox.service("smtp").send(mail()))

    assert type(caught.value) is expected
    assert caught.value.status == reply and caught.value.body
    if expected is TransientError:
        assert caught.value.cause is FailureCause.PROVIDER
    if expected is ThrottledError:
        assert caught.value.retry_after is None


def test_every_recipient_refused_is_permanent(sandbox: Sandbox, run: Run) -> None:
    sandbox.set_faults("smtp", reject_recipients=["bounce"])

    with pytest.raises(PermanentError) as caught:
        run(sandbox.service("smtp").send(mail(("bounce-1@example.com", "bounce-2@example.com"))))

    assert caught.value.status == 550
    assert "bounce-1@example.com" in caught.value.detail and "bounce-2@example.com" in caught.value.detail
    assert sandbox.messages("smtp") == []


def test_a_malformed_address_is_permanent(sandbox: Sandbox, run: Run) -> None:
    with pytest.raises(PermanentError) as caught:
        run(sandbox.service("smtp").send(mail(("not-an-address",))))

    assert caught.value.status == 553


def test_some_recipients_refused_still_sends_to_the_rest(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture, run: Run
) -> None:
    sandbox.set_faults("smtp", reject_recipients=["bounce"])

    result = run(sandbox.service("smtp").send(mail(("ada@example.com", "will-bounce@example.com"))))

    assert result.refused == ("will-bounce@example.com",)
    [received] = sandbox.messages("smtp")
    assert received["id"] == result.message_id and received["recipients"] == ["ada@example.com"]
    [logged] = [record for record in caplog.records if record.getMessage() == "recipients_refused"]
    assert logged.refused == "will-bounce@example.com:550"


def test_relay_down_is_a_network_failure_until_it_recovers(sandbox: Sandbox, run: Run) -> None:
    service = sandbox.service("smtp")
    sandbox.set_faults("smtp", down=True)
    assert not port_open(HOST, sandbox.ports["smtp"])

    with pytest.raises(TransientError) as caught:
        run(service.send(mail()))

    assert caught.value.cause is FailureCause.NETWORK and caught.value.status is None
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    sandbox.reset()
    assert run(service.send(mail())).message_id


def test_no_reply_after_the_data_is_ambiguous(sandbox: Sandbox, run: Run) -> None:
    service = sandbox.service("smtp", read_timeout=0.3)
    sandbox.set_faults("smtp", timeout=True)

    started = time.monotonic()
    with pytest.raises(AmbiguousError) as caught:
        run(service.send(mail()))

    assert 0.3 <= time.monotonic() - started < 3
    assert caught.value.outcome is Outcome.AMBIGUOUS
    # The relay stored the mail and only withheld its answer: exactly why a retry may duplicate it.
    assert len(sandbox.messages("smtp")) == 1


def test_the_read_timeout_bounds_the_whole_conversation(sandbox: Sandbox, run: Run) -> None:
    """A relay slow at every step cannot stretch a send past connect plus read timeout."""
    sandbox.set_faults("smtp", latency_ms=1500)
    service = sandbox.service("smtp", SMTP_TIMEOUT="0.5")

    started = time.monotonic()
    with pytest.raises(AmbiguousError):
        run(service.send(mail()))

    assert time.monotonic() - started < 1.5
    assert service.timeout == (2.0, 0.5)


def test_latency_fault_adds_latency(sandbox: Sandbox, run: Run) -> None:
    sandbox.set_faults("smtp", latency_ms=150)

    assert run(sandbox.service("smtp").send(mail())).latency_ms >= 150


def test_a_silent_server_is_a_network_failure(run: Run) -> None:
    """Connected, but no greeting within the connect timeout: nothing was sent yet."""
    with socket.create_server((HOST, 0)) as silent:
        port = silent.getsockname()[1]
        service = load_providers({"MERCURY_PROVIDERS": "smtp", "SMTP_PORT": str(port),
                                  "MERCURY_PROVIDER_CONNECT_TIMEOUT": "0.3"})[0]
        with pytest.raises(TransientError) as caught:
            run(service.send(mail()))

    assert caught.value.cause is FailureCause.NETWORK


@pytest.mark.parametrize(
    "env, complaint",
    [
        ({"SMTP_SECURITY": "ssl"}, "SMTP_SECURITY"),
        ({"SMTP_PORT": "smtp"}, "SMTP_PORT"),
        ({"SMTP_PORT": "70000"}, "port"),
        ({"SMTP_HOST": "relay.example.com", "SMTP_SECURITY": "none"}, "in clear"),
        ({"SMTP_TIMEOUT": "0"}, "SMTP_TIMEOUT"),
    ],
)
def test_bad_settings_stop_at_start(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ProviderConfigError, match=complaint):
        load_providers({"MERCURY_PROVIDERS": "smtp", **env})


def test_a_remote_relay_gets_starttls_unless_told_otherwise() -> None:
    [relay] = load_providers({"MERCURY_PROVIDERS": "smtp", "SMTP_HOST": "relay.example.com"})
    [local] = load_providers({"MERCURY_PROVIDERS": "smtp"})

    assert (relay.security, local.security) == ("starttls", "none")  # type: ignore[attr-defined]


# TLS: a sandbox of its own per mode, with a certificate made here for 127.0.0.1.


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox.mercury.local")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def tls_sandbox(tmp_path: Path, certificate: tuple[Path, Path], mode: str) -> Iterator[Sandbox]:
    ports = {name: free_port() for name in ADAPTERS}
    control_port = free_port()
    cert, key = certificate
    process = sandbox_process(tmp_path, ports, control_port, "--smtp-tls-cert", str(cert), "--smtp-tls-key",
                              str(key), "--smtp-tls", mode).start()
    yield Sandbox(ports, control_port)
    process.stop()


@pytest.fixture(scope="module")
def starttls_sandbox(tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]) -> Iterator[Sandbox]:
    yield from tls_sandbox(tmp_path_factory.mktemp("starttls"), certificate, "starttls")


@pytest.fixture(scope="module")
def implicit_tls_sandbox(
    tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]
) -> Iterator[Sandbox]:
    yield from tls_sandbox(tmp_path_factory.mktemp("implicit"), certificate, "implicit")


def test_starttls_with_a_trusted_certificate(
    starttls_sandbox: Sandbox, certificate: tuple[Path, Path], run: Run
) -> None:
    service = starttls_sandbox.service("smtp", SMTP_SECURITY="starttls", SMTP_CA_FILE=str(certificate[0]))

    result = run(service.send(mail()))

    assert starttls_sandbox.messages("smtp")[-1]["id"] == result.message_id


def test_plain_smtp_still_works_where_starttls_is_offered(starttls_sandbox: Sandbox, run: Run) -> None:
    assert run(starttls_sandbox.service("smtp", SMTP_SECURITY="none").send(mail())).message_id


def test_an_untrusted_certificate_is_a_provider_failure(starttls_sandbox: Sandbox, run: Run) -> None:
    with pytest.raises(ProviderFailure) as caught:
        run(starttls_sandbox.service("smtp", SMTP_SECURITY="starttls").send(mail()))

    assert "certificate" in caught.value.detail


def test_starttls_asked_of_a_relay_without_it_is_a_provider_failure(sandbox: Sandbox, run: Run) -> None:
    with pytest.raises(ProviderFailure) as caught:
        run(sandbox.service("smtp", SMTP_SECURITY="starttls").send(mail()))

    assert isinstance(caught.value.__cause__, smtplib.SMTPNotSupportedError)


def test_implicit_tls(implicit_tls_sandbox: Sandbox, certificate: tuple[Path, Path], run: Run) -> None:
    service = implicit_tls_sandbox.service("smtp", SMTP_SECURITY="tls", SMTP_CA_FILE=str(certificate[0]))

    result = run(service.send(mail()))

    assert implicit_tls_sandbox.messages("smtp")[-1]["id"] == result.message_id
