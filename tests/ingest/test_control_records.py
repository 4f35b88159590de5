"""The provider registry's and the configurations' records and rules, as the gateway and the dispatcher share them."""
import pytest
from cryptography.fernet import Fernet

from providers.config import ADAPTERS, build_provider
from schemas import codec
from schemas.control.configurations import (
    BREAKERS,
    RATE_LIMITS,
    RETRY_LADDER,
    ConfigurationRecord,
    check_value,
    environment_values,
)
from schemas.control.provider_entries import ProviderEntry, check_entry, effective
from schemas.control.provider_settings import TYPES, InvalidSetting, from_environment
from schemas.control.secrets import SecretBox, SecretsUnavailable, open_secrets


def test_every_type_in_the_settings_table_has_an_adapter() -> None:
    assert ADAPTERS.keys() == TYPES.keys()


def test_a_provider_entry_round_trips_through_avro_without_showing_its_secrets() -> None:
    box = SecretBox(Fernet.generate_key().decode())
    entry = ProviderEntry("mailgun-eu", "mailgun", True, {"domain": "mg.example.com"}, ("api_key",),
                          box.seal({"api_key": "key-123"}), False, 1_767_225_600_000)

    decoded = ProviderEntry.decode(entry.encode())

    assert decoded == entry
    assert box.open(decoded.secrets) == {"api_key": "key-123"}
    assert b"key-123" not in entry.encode() and "key-123" not in repr(entry) and "secrets=" not in repr(entry)


def test_secrets_open_with_any_listed_key_and_not_without_one() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox(old).seal({"password": "hunter2"})

    assert SecretBox(f"{new},{old}").open(token) == {"password": "hunter2"}
    with pytest.raises(SecretsUnavailable):
        SecretBox(new).open(token)
    with pytest.raises(SecretsUnavailable, match="MERCURY_SECRETS_KEY"):
        open_secrets(None, token)
    with pytest.raises(ValueError, match="Fernet") as caught:
        SecretBox("not-a-key")
    assert "not-a-key" not in str(caught.value)


def test_an_entry_starts_from_the_environment_of_its_type() -> None:
    # The environment's key was given for the EU host: an entry naming that host may keep it.
    env = {"MAILGUN_API_KEY": "env-key", "MAILGUN_DOMAIN": "env.example.com",
           "MAILGUN_BASE_URL": "https://api.eu.mailgun.net/"}
    entry = ProviderEntry("mailgun-eu", "mailgun", settings={"base_url": "https://api.eu.mailgun.net"})

    values = effective(entry.type, env, entry.settings, {})
    adapter = build_provider(entry.id, entry.type, values)

    assert {name: v.source for name, v in values.items()} == {
        "base_url": "api", "domain": "environment", "api_key": "environment", "connect_timeout": "default",
        "read_timeout": "default"}
    assert adapter.name == "mailgun-eu" and adapter.url == "https://api.eu.mailgun.net/v3/env.example.com/messages"
    assert check_entry(entry, env, {})["api_key"] == "env-key"


@pytest.mark.parametrize("entry, secrets, field", [
    (ProviderEntry("Mailgun EU", "mailgun"), {}, "id"),
    (ProviderEntry("x", "postal"), {}, "type"),
    (ProviderEntry("x", "mailgun", settings={"colour": "blue"}), {}, "settings.colour"),
    (ProviderEntry("x", "mailgun", settings={"api_key": "in clear"}), {}, "settings.api_key"),
    (ProviderEntry("x", "mailgun", secret_names=("domain",)), {"domain": "mg.example.com"}, "secrets.domain"),
    (ProviderEntry("x", "mailgun", settings={"base_url": "ftp://mailgun"}), {}, "settings.base_url"),
    (ProviderEntry("x", "sendgrid", secret_names=("api_key",)), {"api_key": " "}, "secrets.api_key"),
    (ProviderEntry("x", "smtp", settings={"port": "70000"}), {}, "settings.port"),
    (ProviderEntry("x", "smtp", settings={"read_timeout": "0"}), {}, "settings.read_timeout"),
    (ProviderEntry("x", "smtp", settings={"host": "relay.example.com", "security": "none"}), {}, "settings.security"),
])
def test_a_bad_entry_is_refused_naming_the_field(entry: ProviderEntry, secrets: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidSetting) as caught:
        check_entry(entry, {}, secrets)
    assert caught.value.field == field


def test_an_environment_error_names_the_variable() -> None:
    with pytest.raises(InvalidSetting) as caught:
        check_entry(ProviderEntry("smtp-eu", "smtp"), {"SMTP_TIMEOUT": "soon"}, {})
    assert caught.value.field == "SMTP_TIMEOUT"
    assert from_environment("smtp", {"MERCURY_PROVIDER_READ_TIMEOUT": "4"})["read_timeout"].value == "4"


def test_configuration_values_are_normalised_and_checked_naming_the_field() -> None:
    assert check_value(RETRY_LADDER, {"delays_s": [1, 2.5]}, levels=4) == {"delays_s": [1.0, 2.5]}
    assert check_value(BREAKERS, {"failures": 3, "recovery_s": 2}, levels=4) == {"failures": 3, "recovery_s": 2.0}
    assert check_value(RATE_LIMITS, {"mailgun-eu": 50}, levels=4) == {"mailgun-eu": 50.0}
    refused = [
        (RETRY_LADDER, {"delays_s": [1, 2, 3]}, "value.delays_s"),
        (RETRY_LADDER, {"delays_s": [1, -2]}, "value.delays_s[1]"),
        (RETRY_LADDER, {"delays": [1]}, "value.delays"),
        (BREAKERS, {"failures": True, "recovery_s": 2}, "value.failures"),
        (BREAKERS, {"failures": 3}, "value.recovery_s"),
        (RATE_LIMITS, {"mailgun": "fast"}, "value.mailgun"),
        ("ladder", {}, "id"),
    ]
    for config_id, value, field in refused:
        with pytest.raises(InvalidSetting) as caught:
            check_value(config_id, value, levels=2)
        assert caught.value.field == field, (config_id, value)


def test_the_environment_gives_every_configuration_a_value() -> None:
    env = {"MERCURY_RETRY_DELAYS": "1,2", "MERCURY_BREAKER_FAILURES": "4", "MERCURY_RATE_LIMITS": "mailgun=5"}
    assert environment_values(env) == {RETRY_LADDER: {"delays_s": [1.0, 2.0]},
                                       BREAKERS: {"failures": 4, "recovery_s": 10.0},
                                       RATE_LIMITS: {"mailgun": 5.0}}
    with pytest.raises(ValueError, match="MERCURY_BREAKER_FAILURES"):
        environment_values({"MERCURY_BREAKER_FAILURES": "0"})


def test_a_configuration_record_round_trips_and_refuses_other_records() -> None:
    record = ConfigurationRecord(BREAKERS, {"failures": 3, "recovery_s": 2.0}, updated_at=1)
    assert ConfigurationRecord.decode(record.encode()) == record
    with pytest.raises(codec.DecodeError):
        ConfigurationRecord.decode(ProviderEntry("x", "smtp").encode())
