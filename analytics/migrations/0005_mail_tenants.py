"""The tenant a mail belongs to, so every read can answer for one API key's owner alone.

Only `mails` gets the column: events name their mail, and a mail's tenant never changes, so a tenant's
events are those of its mails (analytics.questions filters through this table). Rows stored before the
column existed were written before there were tenants: they read as the default tenant. Adding a column
with a default rewrites no part, so this runs in an instant on any history, with the sink running.
"""
from analytics.migrations import Server
from schemas.model import DEFAULT_TENANT


def forwards(server: Server) -> list[str]:
    if server.has_column("mails", "tenant"):
        return []
    return [f"ALTER TABLE {server.database}.mails ADD COLUMN tenant {server.tag('String')} DEFAULT '{DEFAULT_TENANT}'"]
