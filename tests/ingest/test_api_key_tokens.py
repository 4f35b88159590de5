"""Minting, checking and storing API keys: only a hash is kept, and a key checks only its own secret."""
import pytest

from ingest.keys.api_key import PREFIX, ApiKey, InvalidKeyRequest, Scope, mint, parse_token


def test_a_minted_token_checks_against_its_key_and_nothing_else():
    key, token = mint("acme", [Scope.SEND], name="billing")
    key_id, secret = parse_token(token)
    assert token.startswith(PREFIX) and key_id == key.id
    assert key.matches(secret)
    assert not key.matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    other, other_token = mint("acme", [Scope.SEND])
    assert not key.matches(parse_token(other_token)[1])
    assert key.tenant == "acme" and key.scopes == {"send"} and key.active


def test_the_secret_is_stored_nowhere_and_shown_nowhere():
    key, token = mint()
    secret = parse_token(token)[1]
    stored = key.encode()
    assert secret.encode() not in stored and secret not in repr(key) and secret not in str(key.public())
    assert "secret_sha256" not in key.public() and key.secret_sha256.hex() not in repr(key)
    assert ApiKey.decode(stored) == key


def test_a_revoked_key_keeps_its_first_revocation_time():
    key, _ = mint()
    revoked = key.revoked(1000)
    assert not revoked.active and revoked.revoked(2000).revoked_at == 1000
    assert ApiKey.decode(revoked.encode()).revoked_at == 1000


@pytest.mark.parametrize("token", ["", "mk_", "Bearer x", "mk_0123456789abcdef", "mk_0123456789ABCDEF_" + "a" * 43,
                                   "mk_0123456789abcdef_" + "a" * 42, "mk_0123456789abcdef_" + "a" * 43 + "\n"])
def test_malformed_tokens_are_not_tokens(token):
    assert parse_token(token) is None


@pytest.mark.parametrize(("fields", "field"), [
    ({"tenant": "Acme"}, "tenant"), ({"tenant": ""}, "tenant"), ({"tenant": "a" * 65}, "tenant"),
    ({"tenant": 7}, "tenant"), ({"tenant": "acme\n"}, "tenant"),
    ({"scopes": []}, "scopes"), ({"scopes": "send"}, "scopes"), ({"scopes": ["send", "root"]}, "scopes"),
    ({"name": "two\nlines"}, "name"), ({"name": "x" * 201}, "name"),
    ({"rate_per_s": -2}, "rate_per_s"), ({"rate_per_s": float("nan")}, "rate_per_s"),
    ({"rate_per_s": True}, "rate_per_s"), ({"rate_per_s": "5"}, "rate_per_s"),
    ({"burst": -1}, "burst"), ({"burst": 1.5}, "burst"),
])
def test_a_key_that_cannot_be_made_names_the_field(fields, field):
    with pytest.raises(InvalidKeyRequest) as refused:
        mint(**fields)
    assert refused.value.field == field
