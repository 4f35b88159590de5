"""Reads behind the REST API: mails and their events as plain dicts, created_at in int milliseconds.

Every read de-duplicates (FINAL), because the sink delivers at least once and ReplacingMergeTree
collapses copies only when parts merge; lookups filter with PREWHERE, before FINAL merges (see
analytics.questions). Every read takes a tenant (analytics.tenants): another tenant's mail reads exactly
like a missing one; None reads every tenant's.

A page of the newest mails reads only the newest days that can hold it (counted first, cheaply and without
FINAL), keeping one row per id, and its total comes from the per-minute counts (analytics.rollups.mail_counts):
neither merges the whole table.
"""
from collections.abc import Collection

import orjson
from clickhouse_driver import Client

from analytics import tenants
from analytics.lifecycle import EVENT_SEQUENCE, params
from analytics.rollups import mail_counts
from analytics.rollups.milestones import CLOCK_SLACK_MS

QUEUED = "queued"

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

# A copy of an event changes no argMax: no FINAL.
_LATEST_EVENTS = f"""
    SELECT mail, argMax(event, ({EVENT_SEQUENCE}))
    FROM events
    PREWHERE mail IN %(mails)s AND created_at >= toDateTime(%(from_s)s)
    GROUP BY mail
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
        # A mail's events come after its acceptance (give or take the hosts' clocks): only their days are read.
        from_s = max(0, min(mail["created_at"] for mail in mails) - CLOCK_SLACK_MS) // 1000
        latest = dict(self._client.execute(
            _LATEST_EVENTS, params(mails=tuple(mail["id"] for mail in mails), from_s=from_s)))
        for mail in mails:
            mail["status"] = latest.get(mail["id"], QUEUED)
        return mails


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
