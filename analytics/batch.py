"""Rows bound for ClickHouse together with the offsets they came from, closed by size or by age.

Rows are held per partition so that a revoked partition's rows can be dropped: their offsets were never
committed, so whoever owns the partition next reads them again.
"""
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from analytics.rows import Row

TopicPartitionKey = tuple[str, int]


@dataclass
class _Partition:
    next_offset: int = 0
    records: int = 0
    rows: dict[str, list[Row]] = field(default_factory=dict)


class Batch:
    """Not thread-safe; owned by the sink loop."""

    def __init__(self, max_size: int, max_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1 or max_seconds <= 0:
            raise ValueError(f"batch limits must be positive, got size={max_size} seconds={max_seconds}")
        self.max_size = max_size
        self.max_seconds = max_seconds
        self._clock = clock
        self._partitions: dict[TopicPartitionKey, _Partition] = {}
        self._records = 0
        self._opened_at = 0.0

    def __len__(self) -> int:
        """Records taken, including those that produced no row."""
        return self._records

    def add(self, topic: str, partition: int, offset: int, table: str | None = None, row: Row | None = None) -> None:
        """Take one record; table and row are None for a record that is skipped but must be committed."""
        if not self._records:
            self._opened_at = self._clock()
        part = self._partitions.setdefault((topic, partition), _Partition())
        part.next_offset = max(part.next_offset, offset + 1)
        part.records += 1
        if table is not None:
            part.rows.setdefault(table, []).append(row)
        self._records += 1

    def ready(self) -> bool:
        return self._records >= self.max_size or (self._records > 0 and self.seconds_left() == 0)

    def seconds_left(self) -> float:
        """Until the batch is due by age; the full window while it is empty."""
        if not self._records:
            return self.max_seconds
        return max(0.0, self._opened_at + self.max_seconds - self._clock())

    def room(self) -> int:
        return max(0, self.max_size - self._records)

    def rows(self) -> dict[str, list[Row]]:
        """Rows per table, across partitions."""
        tables: dict[str, list[Row]] = {}
        for part in self._partitions.values():
            for table, rows in part.rows.items():
                tables.setdefault(table, []).extend(rows)
        return tables

    def offsets(self) -> dict[TopicPartitionKey, int]:
        """The offset to commit per partition: one past the last record taken."""
        return {key: part.next_offset for key, part in self._partitions.items()}

    def drop(self, partitions: Iterable[TopicPartitionKey]) -> int:
        """Forget the given partitions' records; returns how many were dropped."""
        dropped = 0
        for key in partitions:
            part = self._partitions.pop(key, None)
            if part is not None:
                dropped += part.records
        self._records -= dropped
        return dropped

    def clear(self) -> None:
        self._partitions.clear()
        self._records = 0
