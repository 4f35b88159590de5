"""Insert a batch's rows into ClickHouse, retrying with backoff until they are in or the sink stops.

It never drops rows: while ClickHouse is unreachable or refuses the insert, the same rows are retried,
and the caller commits nothing. A retried insert may land twice; the tables are de-duplicated.
"""
import logging
import threading
import time

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError

from analytics.metrics import INSERT_FAILURES, INSERT_LATENCY, INSERTED
from analytics.rollups import touches
from analytics.rows import COLUMNS, Row

log = logging.getLogger("mercury.analytics.writer")

# Everything the server or the network can throw; anything else is a bug and stops the sink.
RETRYABLE = (ClickHouseError, OSError, EOFError)


def describe(err: BaseException) -> str:
    """One line per error: ClickHouse 18.16 appends a server stack trace to every exception message."""
    text = str(err).split("Stack trace:", 1)[0]
    return " ".join(text.split()) or type(err).__name__


ESCALATE_AFTER = 3
# What a batch may hold: rows of the stored records, and the minutes its late rows touched.
_COLUMNS = {**COLUMNS, touches.TABLE: touches.COLUMNS}


class Writer:
    """Owns its client (one per thread). Blocking."""

    def __init__(
        self, client: Client, stop: threading.Event, first_delay_s: float = 0.2, max_delay_s: float = 5.0,
    ) -> None:
        self._client = client
        self._stop = stop
        self._first_delay_s = first_delay_s
        self._max_delay_s = max_delay_s

    def write(self, rows_by_table: dict[str, list[Row]]) -> bool:
        """Insert every table's rows; True once all are in, False if stop was set while retrying.

        Once stop is set, a failed attempt is not retried: the caller then abandons the batch uncommitted.
        """
        return all(self._insert(table, rows) for table, rows in rows_by_table.items() if rows)

    def _insert(self, table: str, rows: list[Row]) -> bool:
        statement = f"INSERT INTO {table} ({', '.join(_COLUMNS[table])}) VALUES"
        delay = self._first_delay_s
        attempt = 1
        while True:
            started = time.perf_counter()
            try:
                self._client.execute(statement, rows, types_check=False)
            except RETRYABLE as err:
                INSERT_FAILURES.labels(table).inc()
                # Never dropped, never silent: after a few attempts the outage is an error an operator sees.
                (log.error if attempt >= ESCALATE_AFTER else log.warning)("insert_failed", extra={
                    "table": table, "rows": len(rows), "attempt": attempt, "error": describe(err),
                    "retry_in_s": delay,
                })
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, self._max_delay_s)
                attempt += 1
                continue
            INSERT_LATENCY.labels(table).observe(time.perf_counter() - started)
            INSERTED.labels(table).inc(len(rows))
            if attempt > 1:
                log.info("insert_recovered", extra={"table": table, "rows": len(rows), "attempts": attempt})
            log.debug("inserted", extra={
                "table": table, "rows": len(rows), "ms": round((time.perf_counter() - started) * 1000, 1),
            })
            return True
