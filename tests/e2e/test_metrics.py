"""Every long-running process serves Prometheus metrics, and the numbers follow real mails."""
import requests
from prometheus_client.parser import text_string_to_metric_families

from deploy.stack import LocalStack
from tests.e2e.conftest import post_mail, unique_subject, wait_for, wait_for_event

MAILS = 5


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample a /metrics page holds: (name, labels, value)."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, f"{url}: {response.status_code}"
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(response.text)
            for s in family.samples]


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(value for sample, have, value in samples
               if sample == name and all(have.get(k) == v for k, v in labels.items()))


def test_every_process_exports_metrics_that_count_real_mails(api, sandbox, stack: LocalStack):
    ids = [post_mail(api, unique_subject("metrics")) for _ in range(MAILS)]
    for mail_id in ids:
        wait_for_event(api, mail_id, "sent")
    urls = stack.config.metrics_urls()
    dispatchers = [name for name in urls if name.startswith("dispatcher-")]
    assert len(dispatchers) == stack.config.dispatchers

    gateway = scrape(urls["ingest"])
    assert total(gateway, "mercury_ingest_mails_accepted_total") >= MAILS
    assert total(gateway, "mercury_ingest_requests_total", endpoint="/api/v1.0/mails/", status="202") >= MAILS
    assert total(gateway, "mercury_ingest_request_seconds_count", endpoint="/api/v1.0/mails/") >= MAILS

    sent = 0.0
    for name in dispatchers:
        samples = scrape(urls[name])
        sent += total(samples, "mercury_dispatcher_sends_total", outcome="accepted")
        # Each call is timed before it is counted, so a scrape never sees fewer timings than sends.
        timed = total(samples, "mercury_dispatcher_send_seconds_count")
        assert timed >= total(samples, "mercury_dispatcher_sends_total")
        states = {labels["provider"]: value for sample, labels, value in samples
                  if sample == "mercury_dispatcher_breaker_state"}
        # Other tests add providers through the registry: the environment's two are there whatever else is.
        assert {"mailgun", "sendgrid"} <= set(states) and set(states.values()) <= {0, 1, 2}
    assert sent >= MAILS

    # The mails' `sent` events are in ClickHouse; their requests travel on another topic, so wait for those too.
    sink = wait_for(lambda: (s := scrape(urls["sink"])) and
                    total(s, "mercury_sink_rows_inserted_total", table="mails") >= MAILS and s,
                    what="the sink to insert the posted mails")
    assert total(sink, "mercury_sink_records_consumed_total", topic="mail.requests") >= MAILS
    assert total(sink, "mercury_sink_rows_inserted_total", table="events") > 0
    assert total(sink, "mercury_sink_batch_records_count") > 0
    assert total(sink, "mercury_sink_insert_seconds_count") > 0
    lag = {labels["topic"]: value for sample, labels, value in sink if sample == "mercury_sink_lag_records"}
    assert "mail.requests" in lag and all(value >= 0 for value in lag.values())
