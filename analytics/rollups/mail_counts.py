"""Stored mails per minute and tenant: the total of `GET /mails/` without counting every row."""
from clickhouse_driver import Client

from analytics.rollups.spans import Spans, ranges_condition
from analytics.rows import LAST_MS

TABLE = "mail_counts"


def raw_sql(condition: str) -> str:
    """(minute, tenant, mails) of the `mails` rows matching `condition`, each mail once (copies share an id)."""
    return f"""
        SELECT toDateTime(intDiv(created_at_ms, 60000) * 60) AS minute, tenant, uniqExact(id)
        FROM mails
        PREWHERE {condition}
        GROUP BY minute, tenant
    """


def total(client: Client, tenant: str | None) -> int:
    """How many mails are stored (of `tenant`; None: of every tenant). Blocks for two small queries."""
    spans = Spans.load(client, 0)
    only = "" if tenant is None else " AND tenant = %(tenant)s"
    settled, unsettled = spans.table_condition(LAST_MS, whole=False), spans.raw_ranges(LAST_MS, whole=False)
    (counted, raw), = client.execute(f"""
        SELECT
            (SELECT sum(mails) FROM {TABLE} PREWHERE {settled}{only}),
            (SELECT uniqExact(id) FROM mails PREWHERE ({ranges_condition(unsettled)}){only})
    """, {"tenant": tenant})
    return counted + raw
