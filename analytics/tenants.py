"""Reading for one tenant: its mails, and the events of its mails.

Only `mails` has a tenant column. Events carry none (the MailEvent contract stays as it is), so a tenant's
events are found through its mails: `mail IN (SELECT id FROM mails PREWHERE tenant = ...)`. A retry, a
scheduled send or a replay records events long after the mail was accepted, and they are still its
tenant's, so that set is never cut at the window's start. The subqueries read without FINAL: a mail's
tenant never changes, so copies of its row agree, and an id twice in an IN set changes nothing.

Building the IN set is what a tenant's question costs beyond the operator's: a hash set of every id in it.
All of a large tenant's ids (over the whole retention) take far longer than a short window's events, so
for a short window the set is narrowed to the mails that have events in the window (a second, narrow scan
of the same days); a long window takes the tenant's ids as they are.

Queries mark where a tenant's condition goes, inside their PREWHERE (so FINAL still merges only what passed
it); `scoped` fills the marks. For every tenant (None, the operator's view) the marks vanish and the query
is the one that ran before there were tenants. A mail without a stored `mails` row (one the sink has not
written yet) belongs to no tenant, except a request the gateway rejected: it never becomes a mail, so its
`rejected` event names the tenant in its blob, and the one mail's reads find it there (visitParam reads a
flat JSON field on every server version).
"""
from analytics.lifecycle import FROM_START, IN_WINDOW, params

# The marks a query places after its own PREWHERE conditions.
MAILS = "/*tenant:mails*/"
# Events in the window [since, until) of the tenant's mails, whenever those were accepted.
EVENTS = "/*tenant:events*/"
# Events of the tenant's mails accepted from the window's start on. A mail's `accepted` event carries its
# row's created_at (the dispatcher stamps a record without one, created_at 0, with its own time: such rows
# are kept), so every mail accepted in the window is in this set.
EVENTS_ACCEPTED_FROM_START = "/*tenant:events-accepted-from-start*/"
# The events of one mail: its row is a primary-key lookup in `mails`; or the tenant's rejected request.
MAIL_EVENTS = "/*tenant:mail-events*/"
# The events of the mails named in %(mails)s that are the tenant's: primary-key lookups in `mails`.
LISTED_MAIL_EVENTS = "/*tenant:listed-mail-events*/"

# A window up to this long narrows the tenant's IN set to the mails with events in it. Measured on the
# 10-million-event month of `make bench` (half of the mails one tenant's), narrowing is the faster up to a
# week and three times slower over the whole month.
NARROW_WINDOW_MS = 7 * 86_400_000

_TENANT_MAILS = "SELECT id FROM mails PREWHERE tenant = %(tenant)s"
_CONDITIONS = {
    MAILS: " AND tenant = %(tenant)s",
    EVENTS: f" AND mail IN ({_TENANT_MAILS})",
    EVENTS_ACCEPTED_FROM_START: f" AND mail IN ({_TENANT_MAILS}"
                                f" AND ({FROM_START} OR created_at = toDateTime(0)))",
    MAIL_EVENTS: f" AND (mail IN ({_TENANT_MAILS} AND id = %(mail)s)"
                 " OR event = 'rejected' AND visitParamExtractString(blob, 'tenant') = %(tenant)s)",
    LISTED_MAIL_EVENTS: f" AND mail IN ({_TENANT_MAILS} AND id IN %(mails)s)",
}
_NARROWED_EVENTS = f" AND mail IN ({_TENANT_MAILS} AND id IN (SELECT mail FROM events PREWHERE {IN_WINDOW}))"


def scoped(query: str, tenant: str | None, window_ms: int | None = None, **values: object,
           ) -> tuple[str, dict[str, object]]:
    """The query limited to `tenant`'s mails and their events (None: every tenant), with its parameters.
    `window_ms` is the length of the window the query's EVENTS mark covers, when it has one."""
    conditions = dict.fromkeys(_CONDITIONS, "") if tenant is None else dict(_CONDITIONS)
    if tenant is not None and window_ms is not None and window_ms <= NARROW_WINDOW_MS:
        conditions[EVENTS] = _NARROWED_EVENTS
    for mark, condition in conditions.items():
        query = query.replace(mark, condition)
    return query, params(**values) if tenant is None else params(tenant=tenant, **values)
