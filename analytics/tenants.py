"""Reading for one tenant: its mails, the events of its mails, and the rollups of both.

Only `mails` has a tenant column. Events carry none (the MailEvent contract stays as it is), so a tenant's
events are found through its mails: `mail IN (SELECT id FROM mails PREWHERE tenant = ...)`. The subqueries
read without FINAL: a mail's tenant never changes, so copies of its row agree, and an id twice in an IN set
changes nothing.

The rollups (analytics.rollups) carry the tenant of each row, taken from the mail's row when the minute was
settled (`of_mails`). A row settled before its mail's row was stored has tenant '' and keeps the mail id, so
its tenant claims it once the row is there (`claimed`); until then it is the operator's alone, as the raw
events of a mail without a row are.

Queries over one mail mark where a tenant's condition goes, inside their PREWHERE (so FINAL still merges only
what passed it); `scoped` fills the marks. For every tenant (None, the operator's view) the marks vanish. A
mail without a stored `mails` row (one the sink has not written yet) belongs to no tenant, except a request
the gateway rejected: it never becomes a mail, so its `rejected` event names the tenant in its blob, and the
one mail's reads find it there (visitParam reads a flat JSON field on every server version).
"""
from analytics.lifecycle import IN_WINDOW, params
from schemas.vocabulary import EventType

# The marks a query places after its own PREWHERE conditions.
MAILS = "/*tenant:mails*/"
# The events of one mail: its row is a primary-key lookup in `mails`; or the tenant's rejected request.
MAIL_EVENTS = "/*tenant:mail-events*/"
# The events of the mails named in %(mails)s that are the tenant's: primary-key lookups in `mails`.
LISTED_MAIL_EVENTS = "/*tenant:listed-mail-events*/"
# The `rejected` events of the window (IN_WINDOW's parameters) that are the tenant's: those whose blob names it
# (the gateway's refusals, which never became mails), and those naming no tenant on a mail of the tenant's (the
# dispatcher's refusal of a mail the gateway had accepted); only the window's rejected mails are looked up.
REJECTIONS = "/*tenant:rejections*/"

_TENANT_MAILS = "SELECT id FROM mails PREWHERE tenant = %(tenant)s"
_BLOB_TENANT = "visitParamExtractString(blob, 'tenant')"
_CONDITIONS = {
    MAILS: " AND tenant = %(tenant)s",
    MAIL_EVENTS: f" AND (mail IN ({_TENANT_MAILS} AND id = %(mail)s)"
                 f" OR event = '{EventType.REJECTED}' AND {_BLOB_TENANT} = %(tenant)s)",
    LISTED_MAIL_EVENTS: f" AND mail IN ({_TENANT_MAILS} AND id IN %(mails)s)",
    REJECTIONS: f" AND ({_BLOB_TENANT} = %(tenant)s OR {_BLOB_TENANT} = '' AND mail IN ({_TENANT_MAILS} AND id IN"
                f" (SELECT mail FROM events PREWHERE event = %(event_rejected)s AND {IN_WINDOW})))",
}


def of_mails(mails: str) -> str:
    """The tenant of each mail of `mails` (a subquery of ids), to join `USING mail`; a mail without a stored row
    is left without (''). Copies of a row agree on the tenant, so no FINAL."""
    return f"SELECT id AS mail, tenant FROM mails PREWHERE id IN ({mails})"


def claimed(table: str, key: str, condition: str) -> str:
    """A read's condition on rollup rows: the tenant's own, and those settled before their mail's row was stored
    (tenant '', the mail id in `key`) whose row, stored since, is the tenant's. `condition` bounds the table's
    rows read, as the read itself does."""
    return (f"(tenant = %(tenant)s OR tenant = '' AND {key} IN (SELECT id FROM mails PREWHERE tenant = %(tenant)s"
            f" AND id IN (SELECT {key} FROM {table} PREWHERE tenant = '' AND {condition})))")


def scoped(query: str, tenant: str | None, **values: object) -> tuple[str, dict[str, object]]:
    """The query limited to `tenant`'s mails and their events (None: every tenant), with its parameters."""
    conditions = dict.fromkeys(_CONDITIONS, "") if tenant is None else _CONDITIONS
    for mark, condition in conditions.items():
        query = query.replace(mark, condition)
    return query, params(**values) if tenant is None else params(tenant=tenant, **values)
