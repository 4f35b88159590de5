"""Current ClickHouse in-process (chdb), behind enough of clickhouse_driver.Client for the analytics code,
so the tests and `make bench` run the SQL on current ClickHouse as well as on the local 18.16 server.

chdb has no network server: `host` names the chdb data directory, and every client on one directory sees
the same databases, as clients of one server do. chdb runs one data directory per process at a time.
"""
import json
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chdb.session import Session
from clickhouse_driver.util.escape import escape_param, escape_params

# JSONCompact, with NaN distinguishable from NULL.
_OUTPUT_SETTINGS = ("output_format_json_quote_denormals = 1", "output_format_json_quote_64bit_integers = 0")
_INTEGER = re.compile(r"U?Int(8|16|32|64|128|256)")


@dataclass
class _ServerInfo:
    """What clickhouse_driver's escaping reads from the server: its time zone, for datetimes."""

    timezone: str

    def get_timezone(self) -> str:
        return self.timezone


@dataclass
class _Context:
    server_info: _ServerInfo


@dataclass
class _Connection:
    """The connection attributes analytics.migrate reads to open a sibling client."""

    hosts: list[tuple[str, int]]
    database: str
    user: str
    password: str
    connect_timeout: float
    send_receive_timeout: float
    context: _Context


class CurrentClickHouse:
    """A client on one chdb session; like clickhouse_driver.Client it connects lazily, on the first query
    (failing when its database is missing), and reconnects after disconnect()."""

    def __init__(
        self, host: str, port: int = 0, database: str = "default", user: str = "default", password: str = "",
        client_name: str = "", connect_timeout: float = 10, send_receive_timeout: float = 300,
    ) -> None:
        self.connection = _Connection(
            [(host, port)], database, user, password, connect_timeout, send_receive_timeout,
            _Context(_ServerInfo("UTC")),
        )
        self._session: Session | None = None

    def execute(
        self, query: str, params: Mapping[str, object] | Iterable[Sequence[object]] | None = None,
        types_check: bool = False,
    ) -> list[tuple] | int:
        """Rows as tuples for a query; the row count for an INSERT given rows (sent as literal VALUES).

        Parameters are substituted by clickhouse_driver's own escaping, as its Client does; types_check is
        accepted for the writer's call and has nothing to check, the rows being literals."""
        session = self._connect()
        context = self.connection.context
        if isinstance(params, list | tuple | types.GeneratorType):
            values = ["(" + ", ".join(str(escape_param(value, context)) for value in row) + ")" for row in params]
            if values:
                session.query(f"{query} {', '.join(values)}")
            return len(values)
        if params is not None:
            query = query % escape_params(params, context)
        output = session.query(query, "JSONCompact").bytes()
        if not output:
            return []
        result = json.loads(output)
        converters = [_converter(column["type"]) for column in result["meta"]]
        return [tuple(convert(value) for convert, value in zip(converters, row)) for row in result["data"]]

    def disconnect(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _connect(self) -> Session:
        if self._session is None:
            session = Session(self.connection.hosts[0][0])
            try:
                for setting in _OUTPUT_SETTINGS:
                    session.query(f"SET {setting}")
                session.query(f"USE {self.connection.database}")
                (timezone,), = json.loads(session.query("SELECT timezone()", "JSONCompact").bytes())["data"]
            except BaseException:
                session.close()
                raise
            self.connection.context.server_info.timezone = timezone
            self._session = session
        return self._session


def _converter(type_name: str) -> Callable[[Any], object]:
    """The Python value clickhouse_driver returns for a JSONCompact value of this ClickHouse type."""
    if type_name.startswith("LowCardinality("):
        return _converter(type_name[len("LowCardinality("):-1])
    if type_name.startswith("Nullable("):
        inner = _converter(type_name[len("Nullable("):-1])
        return lambda value: None if value is None else inner(value)
    if type_name.startswith("Array("):
        element = _converter(type_name[len("Array("):-1])
        return lambda value: [element(item) for item in value]
    if _INTEGER.fullmatch(type_name):
        return int
    if type_name == "Float64":
        return float  # also reads the quoted "nan" and "inf"
    if type_name == "String":
        return str
    raise TypeError(f"no conversion for ClickHouse type {type_name}; add one matching clickhouse_driver")
