"""The lag endpoint against the running stack: it reads the groups' real commits and the topics' ends."""

from tests.e2e.conftest import gateway, post_mail, unique_subject, wait_for, wait_for_event


def lag(api: str) -> dict:
    response = gateway.get(f"{api}/analytics/lag", timeout=15)
    assert response.status_code == 200, response.text
    return {group["group"]: group for group in response.json()["groups"]}


def requests_topic(group: dict) -> dict:
    [topic] = [t for t in group["topics"] if t["topic"] == "mail.requests"]
    return topic


def test_a_group_that_handled_every_mail_has_committed_to_the_end(api, sandbox):
    ids = [post_mail(api, unique_subject("lag")) for _ in range(4)]
    for mail_id in ids:
        wait_for_event(api, mail_id, "sent")

    groups = wait_for(lambda: (now := lag(api)) and all(requests_topic(g)["lag"] == 0 for g in now.values()) and now,
                      what="both groups to have committed mail.requests to its end")
    assert set(groups) == {"mercury-dispatcher", "mercury-analytics"}
    for group in groups.values():
        assert group["lag"] == sum(t["lag"] for t in group["topics"])
        partitions = requests_topic(group)["partitions"]
        assert sum(p["end"] for p in partitions) > 0
        # Every partition holding records was committed by the group: the lag comes from its commits.
        assert all(p["committed"] is not None for p in partitions if p["end"] > p["start"])
