"""Reads behind the REST API: mails and their events as plain dicts, created_at in int milliseconds.

Every read de-duplicates (FINAL), because the sink delivers at least once and ReplacingMergeTree
collapses copies only when parts merge; lookups filter with PREWHERE, before FINAL merges (see
analytics.questions). Every read takes a tenant (analytics.tenants): another tenant's mail reads exactly
like a missing one; None reads every tenant's.
"""
from collections.abc import Collection

import orjson
from clickhouse_driver import Client

from analytics import tenants
from analytics.lifecycle import EVENT_SEQUENCE, params

QUEUED = "queued"

_MAIL_FIELDS = ("id", "sender", "recipients", "subject", "content", "origin", "created_at")
_EVENT_FIELDS = ("id", "mail", "event", "created_at", "created_by", "provider", "outcome", "blob")

_LIST_MAILS = """
    SELECT id, sender, recipients, subject, content, origin, created_at_ms
    FROM mails FINAL
    ORDER BY created_at_ms DESC, id DESC
    LIMIT %(offset)s, %(limit)s
"""
_LIST_TENANT_MAILS = """
    SELECT id, sender, recipients, subject, content, origin, created_at_ms
    FROM mails FINAL
    PREWHERE tenant = %(tenant)s
    ORDER BY created_at_ms DESC, id DESC
    LIMIT %(offset)s, %(limit)s
"""

_COUNT_MAILS = "SELECT count() FROM mails FINAL"
_COUNT_TENANT_MAILS = "SELECT count() FROM mails FINAL PREWHERE tenant = %(tenant)s"

_GET_MAIL = f"""
    SELECT id, sender, recipients, subject, content, origin, created_at_ms
    FROM mails FINAL
    PREWHERE id = %(mail)s{tenants.MAILS}
"""

_LATEST_EVENTS = f"""
    SELECT mail, argMax(event, ({EVENT_SEQUENCE}))
    FROM events FINAL
    PREWHERE mail IN %(mails)s
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
        if tenant is None:
            rows = self._client.execute(_LIST_MAILS, {"limit": limit, "offset": offset})
            (total,), = self._client.execute(_COUNT_MAILS)
        else:
            rows = self._client.execute(_LIST_TENANT_MAILS, {"limit": limit, "offset": offset, "tenant": tenant})
            (total,), = self._client.execute(_COUNT_TENANT_MAILS, {"tenant": tenant})
        return self._with_status(rows), total

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
        latest = dict(self._client.execute(_LATEST_EVENTS, params(mails=tuple(mail["id"] for mail in mails))))
        for mail in mails:
            mail["status"] = latest.get(mail["id"], QUEUED)
        return mails


def _detail(blob: str) -> dict:
    try:
        detail = orjson.loads(blob or "{}")
    except orjson.JSONDecodeError:
        return {}
    return detail if isinstance(detail, dict) else {}


def _event(row: tuple) -> dict:
    event = dict(zip(_EVENT_FIELDS, row))
    # The table stores '' for "none"; the API speaks the Avro contract, where these are null.
    event["provider"] = event["provider"] or None
    event["outcome"] = event["outcome"] or None
    return event
