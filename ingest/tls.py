"""The gateway's own TLS: a certificate and key given together, checked before uvicorn starts.

uvicorn loads the pair in every worker after the listening socket is bound; a bad pair found there kills the
workers one by one with a traceback. Loading it once here first turns that into one clear message at start.
"""
import ssl

CERT_ENV = "MERCURY_TLS_CERT_FILE"
KEY_ENV = "MERCURY_TLS_KEY_FILE"


class TlsConfigInvalid(ValueError):
    """Only one of the two files is given, or the pair cannot be loaded; a configuration error, raised at start."""


def check_tls_files(cert_file: str, key_file: str) -> bool:
    """True when TLS is configured (both files given and usable), False when neither is given.

    Raises TlsConfigInvalid when only one is given, or when a file is unreadable or the pair does not load
    (not PEM, key does not match the certificate, key protected by a passphrase)."""
    if not cert_file and not key_file:
        return False
    if not cert_file or not key_file:
        given, missing = (CERT_ENV, KEY_ENV) if cert_file else (KEY_ENV, CERT_ENV)
        raise TlsConfigInvalid(f"{given} is set but {missing} is not: give both to serve HTTPS, or neither")
    for env, path in ((CERT_ENV, cert_file), (KEY_ENV, key_file)):
        try:
            with open(path, "rb"):
                pass
        except OSError as err:
            raise TlsConfigInvalid(f"{env}={path} cannot be read: {err.strerror or err}") from err
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # An empty password makes a passphrase-protected key fail here instead of prompting on the terminal.
        context.load_cert_chain(cert_file, key_file, password=lambda: b"")
    except ssl.SSLError as err:
        raise TlsConfigInvalid(
            f"{CERT_ENV}={cert_file} and {KEY_ENV}={key_file} do not load as a PEM certificate and its "
            f"unencrypted private key: {err.reason or err}") from err
    return True
