"""The gateway logs every request it answers: method, route template, status, latency and the key's id, in the
one log format; never the key's secret, a mail id or a query's values."""
from deploy.stack import LocalStack
from schemas.logs import find_events
from tests.e2e.conftest import post_mail, unique_subject, wait_for
from tests.e2e.sessions import key_session, new_key


def test_each_request_is_one_line_naming_its_route_and_key_but_no_secret(api: str, stack: LocalStack) -> None:
    minted = new_key(api, scopes=["send", "read"])
    session = key_session(minted["key"])
    mail_id = post_mail(api, unique_subject("access-log"), session=session)
    session.get(f"{api}/mails/{mail_id}", params={"secret": "query-value"}, timeout=10)
    assert key_session("mk_nobody_wrong").get(f"{api}/mails/", timeout=10).status_code == 401
    log = stack.logs / "ingest.log"

    def requests_of(key: str) -> list[dict[str, str]]:
        return [line for line in find_events(log.read_text(), "request") if line.get("key") == key]

    lines = wait_for(lambda: len(found := requests_of(minted["id"])) >= 2 and found)
    assert {(line["method"], line["route"]) for line in lines} >= {
        ("POST", "/api/v1.0/mails/"), ("GET", "/api/v1.0/mails/{mail_id}")}
    assert ("POST", "/api/v1.0/mails/", "202") in {(line["method"], line["route"], line["status"]) for line in lines}
    assert all(float(line["ms"]) >= 0 and line["logger"] == "mercury.ingest.access" for line in lines)
    assert wait_for(lambda: [line for line in requests_of("-") if line["status"] == "401"])
    every_request = find_events(log.read_text(), "request")
    assert not [line for line in every_request
                if any(mail_id in value or "query-value" in value for value in line.values())]
    assert minted["key"] not in log.read_text()
