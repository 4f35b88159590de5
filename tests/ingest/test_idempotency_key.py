"""The Idempotency-Key header: what it may hold, the mail id it stands for, and the bounded memory of keys."""
import uuid

import pytest
from starlette.datastructures import Headers

from ingest.mails.idempotency import BadKey, RecentKeys, idempotency_key, mail_id_for


def key_of(*values: str) -> str | None:
    return idempotency_key(Headers(raw=[(b"idempotency-key", v.encode("latin-1")) for v in values]))


def test_no_header_means_no_key():
    assert idempotency_key(Headers({"content-type": "application/json"})) is None


@pytest.mark.parametrize("value", ["a", "order-4711/retry", "x" * 255, " !~", str(uuid.uuid4())])
def test_printable_ascii_up_to_255_characters_is_a_key(value):
    assert key_of(value) == value


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there", "bell\x07", "caf\xe9", "del\x7f"])
def test_anything_else_is_refused(value):
    with pytest.raises(BadKey) as caught:
        key_of(value)
    assert caught.value.field == "Idempotency-Key" and "printable ASCII" in caught.value.problem


def test_the_header_may_be_given_only_once():
    with pytest.raises(BadKey, match="once"):
        key_of("a", "b")


def test_a_key_always_stands_for_the_same_ordinary_looking_mail_id():
    first = mail_id_for("order-4711")
    assert first == mail_id_for("order-4711") != mail_id_for("order-4712")
    assert len(first) == 32 and int(first, 16) >= 0


def test_recent_keys_forget_the_least_recently_used_first():
    recent = RecentKeys(size=2)
    recent.put("a", "id-a", "d-a")
    recent.put("b", "id-b", "d-b")
    assert recent.get("a") == ("id-a", "d-a")
    recent.put("c", "id-c", "d-c")
    assert recent.get("b") is None
    assert recent.get("a") == ("id-a", "d-a") and recent.get("c") == ("id-c", "d-c")
