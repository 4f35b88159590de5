"""The error classes carry what the dispatcher and the dead letter need."""
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from providers import (
    AmbiguousError,
    PermanentError,
    ProviderError,
    ProviderFailure,
    ThrottledError,
    TransientError,
)
from providers.errors import DETAIL_LIMIT
from providers.mailgun import Mailgun
from schemas.vocabulary import FailureCause, Outcome


def test_each_class_names_its_outcome() -> None:
    assert TransientError.outcome is ThrottledError.outcome is Outcome.TRANSIENT
    assert ProviderFailure.outcome is Outcome.PROVIDER_FAILURE
    assert PermanentError.outcome is Outcome.PERMANENT
    assert AmbiguousError.outcome is Outcome.AMBIGUOUS
    for cls in (TransientError, ProviderFailure, PermanentError, AmbiguousError):
        assert issubclass(cls, ProviderError)


def test_error_keeps_a_bounded_copy_of_the_provider_answer() -> None:
    error = PermanentError("mailgun", "bad address", status=400, body="x" * 10_000)

    assert len(error.body) == 2048
    assert str(error) == "mailgun: bad address (HTTP 400)"
    assert ThrottledError("sendgrid", "slow down", retry_after=None).cause is FailureCause.RATE_LIMIT


def test_the_detail_a_tenant_sees_is_one_bounded_line() -> None:
    error = ProviderFailure("smtp", "550 refused\r\n\x1b[31mforged: line\u202e" + "z" * 1000, status=550)

    assert error.detail.startswith("550 refused [31mforged: line z") and len(error.detail) == DETAIL_LIMIT
    assert error.detail.endswith("…") and error.args[1] == error.detail
    assert not any(ord(c) < 32 or c == "\u202e" for c in str(error))


def test_an_answer_in_no_known_shape_is_told_by_its_status(mailgun: Mailgun) -> None:
    response = requests.Response()
    response.status_code, response._content = 503, b"<html>Varnish cache server: backend 10.0.0.7 down</html>"

    error = mailgun.error_for(response)

    assert isinstance(error, TransientError) and error.status == 503 and "Varnish" in error.body
    assert error.detail == "Service Unavailable, without a Mailgun error message"


def response_with(headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = 429
    response.headers.update(headers)
    return response


@pytest.fixture
def mailgun() -> Mailgun:
    return Mailgun("http://127.0.0.1:1", "key", "mg.example.com")


def test_retry_after_reads_seconds_and_http_dates(mailgun: Mailgun) -> None:
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)

    assert mailgun.retry_after(response_with({"Retry-After": "120"})) == 120.0
    assert 55 <= mailgun.retry_after(response_with({"Retry-After": in_a_minute})) <= 60
    assert mailgun.retry_after(response_with({"Retry-After": "whenever"})) is None
    assert mailgun.retry_after(response_with({})) is None
