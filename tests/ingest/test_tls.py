"""The gateway's own HTTPS: a real gateway process (two uvicorn workers, no broker reachable) given a
self-signed certificate made here, and what stops it at start."""
import datetime
import ipaddress
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy.processes import ManagedProcess, StartupError, free_port
from ingest.tls import CERT_ENV, KEY_ENV
from schemas.logs import find_events

ROOT = Path(__file__).resolve().parents[2]


def self_signed(directory: Path, name: str = "gateway") -> tuple[Path, Path]:
    """A P-256 key and a certificate for 127.0.0.1 and localhost, valid for a day, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def gateway(log_dir: Path, ready_url: str, verify: Path | bool, port: int, **env: str) -> ManagedProcess:
    env = {"MERCURY_INGEST_PORT": str(port), "MERCURY_INGEST_WORKERS": "2",
           "KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}", "MERCURY_KAFKA_DELIVERY_TIMEOUT_MS": "1000", **env}

    def ready() -> bool:
        try:
            return requests.get(ready_url, timeout=1, verify=str(verify)).status_code == 200
        except requests.RequestException:
            return False

    return ManagedProcess("ingest-tls", [sys.executable, "-m", "ingest"], log_dir, env=env, cwd=ROOT, ready=ready,
                          ready_timeout=30)


@pytest.fixture(scope="module")
def https_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(directory)
    port = free_port()
    process = gateway(directory, f"https://127.0.0.1:{port}/api/v1.0/", cert, port,
                      **{CERT_ENV: str(cert), KEY_ENV: str(key)})
    process.start()
    yield port, cert
    process.stop()


def test_https_verified_against_the_certificate_is_answered(https_gateway: tuple[int, Path]):
    port, cert = https_gateway
    for _ in range(4):  # several connections, so both workers answer
        answer = requests.get(f"https://127.0.0.1:{port}/api/v1.0/", verify=str(cert), timeout=5)
        assert answer.status_code == 200 and answer.json()["version"] == "1.0"
    assert requests.get(f"https://localhost:{port}/openapi.json", verify=str(cert), timeout=5).ok


def test_a_certificate_the_client_does_not_trust_is_refused(https_gateway: tuple[int, Path], tmp_path: Path):
    port, _cert = https_gateway
    other, _key = self_signed(tmp_path, "other")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{port}/api/v1.0/", verify=str(other), timeout=5)


def test_plain_http_to_the_https_port_gets_no_answer(https_gateway: tuple[int, Path]):
    port, _cert = https_gateway
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/api/v1.0/", timeout=5)


def start_fails(log_dir: Path, **env: str) -> str:
    """Start a gateway that must exit at start; the error of the one ingest_config_invalid line it logs."""
    port = free_port()
    process = gateway(log_dir, f"http://127.0.0.1:{port}/api/v1.0/", False, port, **env)
    with pytest.raises(StartupError, match="exited with 2"):
        process.start()
    [refused] = find_events(process.output_since_start(), "ingest_config_invalid")
    assert refused["error_type"] == "TlsConfigInvalid"
    return refused["error"]


@pytest.mark.parametrize("given", [CERT_ENV, KEY_ENV])
def test_one_file_without_the_other_stops_the_gateway_at_start(tmp_path: Path, given: str):
    cert, key = self_signed(tmp_path)
    error = start_fails(tmp_path, **{given: str(cert if given == CERT_ENV else key)})
    assert f"{given} is set but" in error


def test_an_unreadable_file_stops_the_gateway_at_start(tmp_path: Path):
    cert, _key = self_signed(tmp_path)
    error = start_fails(tmp_path, **{CERT_ENV: str(cert), KEY_ENV: str(tmp_path / "missing.key")})
    assert f"{KEY_ENV}={tmp_path / 'missing.key'} cannot be read" in error


def test_a_key_that_is_not_the_certificates_stops_the_gateway_at_start(tmp_path: Path):
    cert, _key = self_signed(tmp_path)
    _other_cert, other_key = self_signed(tmp_path, "other")
    error = start_fails(tmp_path, **{CERT_ENV: str(cert), KEY_ENV: str(other_key)})
    assert "do not load as a PEM certificate and its unencrypted private key" in error
