"""Building the provider list from the environment, and refusing bad settings at start."""
import pytest

from providers import ProviderConfigError, ProviderError, load_providers
from providers.base import environment_proxy
from providers.mailgun import Mailgun
from providers.sendgrid import SendGrid


def test_defaults_point_at_the_local_sandbox() -> None:
    mailgun, sendgrid = load_providers({})

    assert isinstance(mailgun, Mailgun) and isinstance(sendgrid, SendGrid)
    assert mailgun.url == "http://127.0.0.1:8025/v3/sandbox.mercury.local/messages"
    assert sendgrid.url == "http://127.0.0.1:8026/v3/mail/send"
    assert mailgun.timeout == sendgrid.timeout == (2.0, 10.0)


def test_plain_http_is_for_a_loopback_host_only() -> None:
    [local] = load_providers({"MERCURY_PROVIDERS": "sendgrid", "SENDGRID_BASE_URL": "http://localhost:8026"})
    [remote] = load_providers({"MERCURY_PROVIDERS": "sendgrid", "SENDGRID_BASE_URL": "https://api.sendgrid.com"})

    assert (local.url, remote.url) == ("http://localhost:8026/v3/mail/send", "https://api.sendgrid.com/v3/mail/send")


def test_order_names_and_timeouts_come_from_the_environment() -> None:
    env = {
        "MERCURY_PROVIDERS": " SendGrid , mailgun,",
        "SENDGRID_BASE_URL": "https://api.sendgrid.com/",
        "SENDGRID_API_KEY": "SG.key",
        "MAILGUN_DOMAIN": "mg.example.com",
        "MERCURY_PROVIDER_CONNECT_TIMEOUT": "0.5",
        "MERCURY_PROVIDER_READ_TIMEOUT": "4",
    }

    sendgrid, mailgun = load_providers(env)

    assert [sendgrid.name, mailgun.name] == ["sendgrid", "mailgun"]
    assert sendgrid.url == "https://api.sendgrid.com/v3/mail/send"
    assert sendgrid.api_key == "SG.key"
    assert mailgun.url.endswith("/v3/mg.example.com/messages")
    assert sendgrid.timeout == mailgun.timeout == (0.5, 4.0)


@pytest.mark.parametrize(
    "env, complaint",
    [
        ({"MERCURY_PROVIDERS": "mailgun,postal"}, "postal"),
        ({"MERCURY_PROVIDERS": " , "}, "no provider"),
        ({"MERCURY_PROVIDERS": "mailgun,mailgun"}, "twice"),
        ({"MERCURY_PROVIDER_CONNECT_TIMEOUT": "soon"}, "MERCURY_PROVIDER_CONNECT_TIMEOUT"),
        ({"MERCURY_PROVIDER_READ_TIMEOUT": "0"}, "MERCURY_PROVIDER_READ_TIMEOUT"),
        ({"MERCURY_PROVIDER_READ_TIMEOUT": "nan"}, "MERCURY_PROVIDER_READ_TIMEOUT"),
        ({"MAILGUN_BASE_URL": "127.0.0.1:8025"}, "base URL"),
        ({"MAILGUN_BASE_URL": "http://api.mailgun.net"}, "MAILGUN_BASE_URL: .* must use https"),
        ({"SENDGRID_BASE_URL": "https://api.sendgrid.com:99999"}, "SENDGRID_BASE_URL: .* not a TCP port"),
        ({"SENDGRID_API_KEY": ""}, "API key"),
        ({"MAILGUN_DOMAIN": ""}, "domain"),
    ],
)
def test_bad_settings_stop_at_start(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ProviderConfigError, match=complaint):
        load_providers(env)


def test_config_errors_are_not_provider_errors() -> None:
    # The dispatcher catches ProviderError per attempt; a config error must escape it and stop the process.
    assert not issubclass(ProviderConfigError, ProviderError)


@pytest.mark.parametrize("url, proxy", [
    ("https://api.mailgun.net", "http://proxy.internal:3128"),
    ("http://api.mailgun.net", "http://plain-proxy.internal:3128"),
    ("https://api.sendgrid.com", None),  # NO_PROXY
    ("http://127.0.0.1:8025", None),  # NO_PROXY, with its port
])
def test_the_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, url: str, proxy: str | None) -> None:
    for name, value in {"HTTPS_PROXY": "http://proxy.internal:3128", "HTTP_PROXY": "http://plain-proxy.internal:3128",
                        "NO_PROXY": "sendgrid.com,127.0.0.1:8025"}.items():
        monkeypatch.setenv(name, value)
        monkeypatch.delenv(name.lower(), raising=False)  # the lower-case spelling wins where both are set

    assert environment_proxy(url) == proxy
