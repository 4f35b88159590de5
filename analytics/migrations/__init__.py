"""Numbered ClickHouse migrations: `NNNN_name.py`, applied in version order, each recorded once.

Each module's docstring says why it exists, and its `forwards(server)` returns DDL statements for the
server as it is now (its version's features, the tables it already has). Every statement is idempotent
(IF NOT EXISTS and the like) and the list is computed again on every run, so a run interrupted between
two statements, or between a statement and its record, is safe to repeat. There is no hand-written
reverse DDL to drift from the forward one.
"""
import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass

_MODULE_NAME = re.compile(r"^(\d{4})_(\w+)$")

# The first release with each feature: below it, tables are created without the feature.
LOW_CARDINALITY = (19, 9)  # 18.x has it only behind allow_experimental_low_cardinality_type
TTL = (19, 6)
DATETIME64 = (20, 5)  # with fromUnixTimestamp64Milli, which fills it from created_at_ms


@dataclass(frozen=True)
class Server:
    """What a migration needs to know about the server it runs on."""

    database: str
    version: tuple[int, int]
    tables: frozenset[str]
    retention_days: int = 0
    # (table, column) pairs: ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS, so a migration asks first.
    columns: frozenset[tuple[str, str]] = frozenset()

    @property
    def low_cardinality(self) -> bool:
        return self.version >= LOW_CARDINALITY

    @property
    def ttl(self) -> bool:
        return self.version >= TTL

    @property
    def datetime64(self) -> bool:
        return self.version >= DATETIME64

    def has_column(self, table: str, column: str) -> bool:
        return (table, column) in self.columns

    def tag(self, column_type: str) -> str:
        """A column type for a few distinct values (event names, providers): dictionary-encoded where it can be."""
        return f"LowCardinality({column_type})" if self.low_cardinality else column_type

    def timestamp(self, millis_column: str) -> str:
        """The human-readable time column derived from a UInt64 millisecond column on insert."""
        if self.datetime64:
            return f"DateTime64(3) DEFAULT fromUnixTimestamp64Milli(toInt64({millis_column}))"
        return f"DateTime DEFAULT toDateTime(intDiv({millis_column}, 1000))"

    def retention(self, time_column: str) -> str:
        """The TTL clause that expires rows after the retention period, where the server has TTL and one is set."""
        if not self.ttl or self.retention_days <= 0:
            return ""
        return f"TTL toDateTime({time_column}) + INTERVAL {int(self.retention_days)} DAY"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    why: str
    forwards: Callable[[Server], list[str]]


def load() -> list[Migration]:
    """Every migration in this package, by version; raises ValueError on a malformed package."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        match = _MODULE_NAME.match(info.name)
        if match is None:
            raise ValueError(f"migration module {info.name!r} is not named NNNN_name")
        module = importlib.import_module(f"{__name__}.{info.name}")
        if not (module.__doc__ or "").strip():
            raise ValueError(f"migration {info.name} has no docstring saying why it exists")
        found.append(Migration(int(match.group(1)), info.name, module.__doc__.strip(), module.forwards))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {[m.name for m in found]}")
    return found


def rebuild(server: Server, table: str, definition: str, columns: tuple[str, ...]) -> list[str]:
    """Statements that replace `table` by one created from `definition` (everything after the table name),
    keeping its rows; for changes ALTER cannot make (partitioning, sorting key, column types).

    The rows are copied into `<table>_next`, which then takes the table's name; `<table>_previous` is
    dropped. Repeated after an interruption at any point, it ends in the same state: a copy made twice
    collapses (the tables are ReplacingMergeTree), and a rename left half done is finished. Rows inserted
    into the old table while the copy runs are not carried over: run it with the sink stopped.
    """
    database = server.database
    following, previous = f"{table}_next", f"{table}_previous"
    listed = ", ".join(columns)
    statements = [f"DROP TABLE IF EXISTS {database}.{previous}"]
    if table in server.tables:
        statements += [
            f"CREATE TABLE IF NOT EXISTS {database}.{following} {definition}",
            f"INSERT INTO {database}.{following} ({listed}) SELECT {listed} FROM {database}.{table}",
            f"RENAME TABLE {database}.{table} TO {database}.{previous}, {database}.{following} TO {database}.{table}",
            f"DROP TABLE IF EXISTS {database}.{previous}",
        ]
    elif following in server.tables:
        statements.append(f"RENAME TABLE {database}.{following} TO {database}.{table}")
    else:
        statements.append(f"CREATE TABLE IF NOT EXISTS {database}.{table} {definition}")
    return statements
