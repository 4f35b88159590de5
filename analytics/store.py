"""Reads behind the REST API: mails and their events as plain dicts, created_at in int milliseconds.

Every read de-duplicates (FINAL), because the sink delivers at least once and ReplacingMergeTree
collapses copies only when parts merge; lookups filter with PREWHERE, before FINAL merges (see
analytics.questions). Every read takes a tenant (analytics.tenants): another tenant's mail reads exactly
like a missing one; None reads every tenant's.

A page of the newest mails reads only the newest days that can hold it (counted first, cheaply and without
FINAL), keeping one row per id, and its total comes from the per-minute counts (analytics.rollups.mail_counts):
neither merges the whole table. The status of a page's mails costs two more queries whatever the page's size: their
latest events with the provider message ids of their sends, then the providers' reports on those ids (skipped when
no mail of the page was sent), both bounded to the days since the page's oldest mail.

A mail's status is its latest event (`queued` before any), until a provider reports on its send: then it is what
the reports say (`feedback_status`). A request the gateway refused never became a mail; `get_rejection` reads it
by the id its 422 named.
"""
from collections.abc import Collection

import orjson
from clickhouse_driver import Client

from analytics import tenants
from analytics.lifecycle import EVENT_SEQUENCE, params
from analytics.rollups import mail_counts
from analytics.rollups.milestones import CLOCK_SLACK_MS
from schemas.vocabulary import Bounce, EventType, FeedbackEvent

QUEUED = "queued"
# The events whose message_id is the provider's id of the mail's send (a duplicate repeats the first send's). Only
# the pipeline's own events: a client's event could name another tenant's message.
SENDING = (EventType.SENT.value, EventType.DUPLICATE.value)
# Reports that show the message reached the recipient: an open, a click or an unsubscribe is made by someone who
# has it, whether or not the provider also reported the delivery.
_REACHED = tuple(event.value for event in (FeedbackEvent.DELIVERED, FeedbackEvent.OPENED, FeedbackEvent.CLICKED,
                                           FeedbackEvent.UNSUBSCRIBED))
# A mail's feedback rank (the higher wins across its recipients) and the status and bounce it stands for.
_FEEDBACK_RANKS = {
    4: (FeedbackEvent.COMPLAINED.value, None),
    3: (FeedbackEvent.BOUNCED.value, Bounce.HARD.value),
    2: (FeedbackEvent.BOUNCED.value, Bounce.SOFT.value),
    1: (FeedbackEvent.DELIVERED.value, None),
}

_MAIL_FIELDS = ("id", "sender", "recipients", "subject", "content", "origin", "created_at")
_EVENT_FIELDS = ("id", "mail", "event", "created_at", "created_by", "provider", "outcome", "blob")

DAY_MS = 86_400_000

# Rows per day, newest first: copies count twice, so a page may need a day more than these say.
_DAYS = """
    SELECT intDiv(created_at_ms, 86400000) AS day, count()
    FROM mails
    PREWHERE 1{tenant}
    GROUP BY day
    ORDER BY day DESC
"""
# Copies of a row are alike: one per id is kept without FINAL, which on current ClickHouse reads every part.
_LIST_MAILS = """
    SELECT id, sender, recipients, subject, content, origin, created_at_ms
    FROM mails
    PREWHERE created_at >= toDateTime(%(from_s)s){tenant}
    ORDER BY created_at_ms DESC, id DESC
    LIMIT 1 BY id
    LIMIT %(offset)s, %(limit)s
"""
_OF_TENANT = " AND tenant = %(tenant)s"

_GET_MAIL = f"""
    SELECT id, sender, recipients, subject, content, origin, created_at_ms
    FROM mails FINAL
    PREWHERE id = %(mail)s{tenants.MAILS}
"""

# A copy of an event changes neither argMax nor a set of ids: no FINAL.
_LATEST_EVENTS = f"""
    SELECT mail, argMax(event, ({EVENT_SEQUENCE})),
           groupUniqArrayIf(message_id, event IN %(sending)s AND message_id != '')
    FROM events
    PREWHERE mail IN %(mails)s AND created_at >= toDateTime(%(from_s)s)
    GROUP BY mail
"""

# Each mail's feedback rank (feedback_status) from the reports on its sends' message ids: per recipient first (a
# later delivery settles a soft bounce of the same recipient, whatever order the webhooks came in), then the highest
# over the recipients. %(owners)s names the mail of each of %(message_ids)s (arrays, for transform; %(ids)s is
# the same ids as a tuple, for IN). A provider's re-sent webhook collapses (FINAL).
_FEEDBACK = """
    SELECT mail, max(rank)
    FROM
    (
        SELECT transform(message_id, %(message_ids)s, %(owners)s, '') AS mail,
               multiIf(countIf(event = %(feedback_complained)s) > 0, 4,
                       countIf(event = %(feedback_bounced)s AND bounce = %(bounce_hard)s) > 0, 3,
                       countIf(event IN %(reached)s) > 0, 1,
                       countIf(event = %(feedback_bounced)s) > 0, 2,
                       0) AS rank
        FROM provider_feedback FINAL
        PREWHERE message_id IN %(ids)s AND created_at >= toDateTime(%(from_s)s)
        GROUP BY mail, lower(recipient)
    )
    GROUP BY mail
"""

# The gateway's (or the dispatcher's) refusal recorded under an id that never became a mail; its blob names the
# tenant (analytics.tenants.MAIL_EVENTS).
_REJECTION = f"""
    SELECT created_at_ms, blob
    FROM events FINAL
    PREWHERE mail = %(mail)s AND event = %(event_rejected)s{tenants.MAIL_EVENTS}
    ORDER BY {EVENT_SEQUENCE}
    LIMIT 1
"""

_MAIL_EVENTS = f"""
    SELECT id, mail, event, created_at_ms, created_by, provider, outcome, blob
    FROM events FINAL
    PREWHERE mail = %(mail)s{tenants.MAIL_EVENTS}
    ORDER BY {EVENT_SEQUENCE}
"""

_ACCEPTED_BLOBS = f"""
    SELECT mail, any(blob)
    FROM events FINAL
    PREWHERE mail IN %(mails)s AND event = %(event_accepted)s{tenants.LISTED_MAIL_EVENTS}
    GROUP BY mail
"""

_GET_EVENT = f"""
    SELECT id, mail, event, created_at_ms, created_by, provider, outcome, blob
    FROM events FINAL
    PREWHERE mail = %(mail)s AND id = %(event)s{tenants.MAIL_EVENTS}
"""


class MailStore:
    """Blocking reads over one client; like the client, one store per thread."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list_mails(self, limit: int, offset: int, tenant: str | None = None) -> tuple[list[dict], int]:
        """One page of mails, newest first, and the total number of mails."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must not be negative, got limit={limit} offset={offset}")
        only = "" if tenant is None else _OF_TENANT
        values = {"limit": limit, "offset": offset, "tenant": tenant}
        days = self._client.execute(_DAYS.format(tenant=only), values)
        from_day = _first_day_needed(days, offset + limit)
        rows = self._client.execute(_LIST_MAILS.format(tenant=only), {**values, "from_s": from_day * DAY_MS // 1000})
        if days and len(rows) < limit and from_day > days[-1][0]:
            rows = self._client.execute(_LIST_MAILS.format(tenant=only), {**values, "from_s": 0})
        return self._with_status(rows), mail_counts.total(self._client, tenant)

    def get_mail(self, mail_id: str, tenant: str | None = None) -> dict | None:
        rows = self._client.execute(*tenants.scoped(_GET_MAIL, tenant, mail=mail_id))
        mails = self._with_status(rows)
        return mails[0] if mails else None

    def get_rejection(self, mail_id: str, tenant: str | None = None) -> dict | None:
        """A refused request by the id its refusal was recorded under (the `mail_id` of a 422): status `rejected`,
        the reason and the field refused (None when the refusal named none), when it was refused. None when there is
        no refusal under the id, or when it is not `tenant`'s. Meant for an id that is no mail (get_mail found
        none): a mail the dispatcher refused reads `rejected` as its status."""
        rows = self._client.execute(*tenants.scoped(_REJECTION, tenant, mail=mail_id))
        if not rows:
            return None
        [(created_at, blob)] = rows
        detail = _detail(blob)
        return {
            "id": mail_id, "status": EventType.REJECTED.value, "reason": _text_or_none(detail.get("reason")),
            "field": _text_or_none(detail.get("field")), "created_at": created_at,
        }

    def feedback_status(self, message_ids: dict[str, Collection[str]], from_ms: int = 0) -> dict[str, dict]:
        """What the providers' reports say became of each mail, by mail id, from the message ids of its sends
        (`message_ids`: mail id → ids); a mail without reports is left out. Each is `{"status": ..., "bounce": ...}`:

        - `complained`: a recipient marked it as spam. It outranks everything: the recipient did get it, but a
          complaint is what costs the sender's reputation and must stop further mail to that address.
        - `bounced`, `bounce` `hard`: a recipient's address refused it for good (after any delivery report: an
          asynchronous bounce comes after the receiving server first took the message).
        - `bounced`, `bounce` `soft`: a recipient's server refused it for now and nothing since showed it arrived;
          the provider may still deliver it, and then the mail reads `delivered`.
        - `delivered`: every recipient reported on reached it (delivered, or opened, clicked, unsubscribed: only
          someone who has the message does those).

        A recipient's own reports are settled first: a complaint, else a hard bounce, else anything showing it
        arrived (which settles an earlier soft bounce), else a soft bounce. The mail then reads the worst recipient:
        complained, bounced hard, bounced soft, delivered; one unhappy recipient is what a sender has to act on. The
        order of arrival plays no part: webhooks come out of order, several within the same second, and a provider's
        re-sent report counts once. Recipients no provider reported on yet do not count. Reports stamped more than an
        hour (the hosts' clock slack) before `from_ms` are not read: `from_ms` bounds the days read."""
        owners = {message_id: mail for mail, ids in message_ids.items() for message_id in ids}
        if not owners:
            return {}
        ids = sorted(owners)
        rows = self._client.execute(_FEEDBACK, params(
            message_ids=ids, owners=[owners[message_id] for message_id in ids], ids=tuple(ids), reached=_REACHED,
            from_s=max(0, from_ms - CLOCK_SLACK_MS) // 1000))
        statuses = {}
        for mail, rank in rows:
            if rank in _FEEDBACK_RANKS:
                status, bounce = _FEEDBACK_RANKS[rank]
                statuses[mail] = {"status": status, "bounce": bounce}
        return statuses

    def mail_events(self, mail_id: str, tenant: str | None = None) -> list[dict]:
        """The mail's events in the order they happened (analytics.lifecycle.EVENT_SEQUENCE)."""
        return [_event(row) for row in self._client.execute(*tenants.scoped(_MAIL_EVENTS, tenant, mail=mail_id))]

    def get_event(self, mail_id: str, event_id: str, tenant: str | None = None) -> dict | None:
        rows = self._client.execute(*tenants.scoped(_GET_EVENT, tenant, mail=mail_id, event=event_id))
        return _event(rows[0]) if rows else None

    def accepted_details(self, mail_ids: Collection[str], tenant: str | None = None) -> dict[str, dict]:
        """The detail recorded with each accepted mail's acceptance ({} when there is none), by mail id; a mail
        never accepted is left out. One query for all of them (a batch of mails checks its keys at once). The
        blob is parsed here because ClickHouse 18.16 has no JSONExtract."""
        if not mail_ids:
            return {}
        rows = self._client.execute(*tenants.scoped(_ACCEPTED_BLOBS, tenant, mails=tuple(mail_ids)))
        return {mail: _detail(blob) for mail, blob in rows}

    def _with_status(self, rows: list[tuple]) -> list[dict]:
        if not rows:
            return []
        mails = [dict(zip(_MAIL_FIELDS, row)) for row in rows]
        # A mail's events and its providers' reports come after its acceptance (give or take the hosts' clocks):
        # only their days are read.
        oldest = min(mail["created_at"] for mail in mails)
        from_s = max(0, oldest - CLOCK_SLACK_MS) // 1000
        latest = {mail: (event, message_ids) for mail, event, message_ids in self._client.execute(
            _LATEST_EVENTS, params(mails=tuple(mail["id"] for mail in mails), from_s=from_s, sending=SENDING))}
        reported = self.feedback_status({mail: ids for mail, (_, ids) in latest.items()}, oldest)
        for mail in mails:
            mail["status"] = latest.get(mail["id"], (QUEUED, ()))[0]
            if mail["id"] in reported:
                mail.update(_bounced_only(reported[mail["id"]]))
        return mails


def _bounced_only(status: dict) -> dict:
    """A feedback status as a mail shows it: `bounce` only beside `bounced`."""
    return status if status["bounce"] is not None else {"status": status["status"]}


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _detail(blob: str) -> dict:
    try:
        detail = orjson.loads(blob or "{}")
    except orjson.JSONDecodeError:
        return {}
    return detail if isinstance(detail, dict) else {}


def _first_day_needed(days: list[tuple[int, int]], rows: int) -> int:
    """The oldest of the newest days that hold `rows` rows (the oldest day when none do; 0 with no days)."""
    held = 0
    for day, count in days:
        held += count
        if held >= rows:
            return day
    return days[-1][0] if days else 0


def _event(row: tuple) -> dict:
    event = dict(zip(_EVENT_FIELDS, row))
    # The table stores '' for "none"; the API speaks the Avro contract, where these are null.
    event["provider"] = event["provider"] or None
    event["outcome"] = event["outcome"] or None
    return event
