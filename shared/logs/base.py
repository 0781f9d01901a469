"""What the Table logs share: hour-partitioned keys, the writer-backed base, the memory twin, time-range reads."""
from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from ..core.timefmt import to_utc
from ..storage.batches import BackgroundTableWriter, TableSource, escape_key


def hour_partition(moment: datetime) -> str:
    """The PartitionKey of a log entity: its UTC hour, e.g. `2026112415`."""
    return f"{to_utc(moment):%Y%m%d%H}"


def time_row_key(moment: datetime, unique: str) -> str:
    """A RowKey that sorts by time within its hour partition and is unique through `unique`."""
    return f"{to_utc(moment):%Y%m%dT%H%M%S%f}_{escape_key(unique)}"


class MemoryLog:
    """In-memory twin of the Table logs for unit tests: same `write`, `flush` and `close`."""

    def __init__(self) -> None:
        self._records: list[Any] = []
        self._lock = threading.Lock()

    def write(self, record: Any) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[Any]:
        """A copy of everything written, in write order."""
        with self._lock:
            return list(self._records)

    def flush(self, timeout: float | None = 10.0) -> bool:
        return True

    def close(self, timeout: float | None = 10.0) -> bool:
        return True


class WriterBackedLog:
    """`flush`, `close` and the counters of a log that writes through a BackgroundTableWriter.

    Builds the writer with the logs' defaults; subclasses pass their `**writer_options` (`max_queue`,
    `flush_interval`, `retry_delays`) through, and set `_merge` to merge entities rather than replace them.
    """

    _merge = False

    def __init__(
        self,
        source: TableSource,
        *,
        max_queue: int = 10_000,
        flush_interval: float = 1.0,  # one transaction per second at most per partition: logs may lag, requests never wait
        retry_delays: Sequence[float] = (0.1, 0.5, 1.0, 2.0, 5.0),
    ) -> None:
        self._writer = BackgroundTableWriter(
            source, max_queue=max_queue, flush_interval=flush_interval, retry_delays=retry_delays, merge=self._merge
        )

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every queued record is written or dropped; False if `timeout` ran out first."""
        return self._writer.flush(timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush and stop the writer thread; later writes are dropped and counted."""
        return self._writer.close(timeout)

    @property
    def written(self) -> int:
        return self._writer.written

    @property
    def dropped(self) -> int:
        return self._writer.dropped


_ENTITY_KEYS = ("PartitionKey", "RowKey")


def read_time_range(
    table_client: Any, time_column: str, since: datetime | None = None, until: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Yield entities of an hour-partitioned log table, `since` <= `time_column` < `until`, without keys.

    The bounds must be timezone-aware (ValueError otherwise). Storage errors propagate.
    """
    conditions, parameters = [], {}
    for name, bound, key_op, time_op in (("since", since, "ge", "ge"), ("until", until, "le", "lt")):
        if bound is None:
            continue
        bound = to_utc(bound, name)
        # The hour partition narrows the scan; the time condition makes the bound exact.
        conditions.append(f"PartitionKey {key_op} @{name}_hour and {time_column} {time_op} @{name}")
        parameters[name] = bound
        parameters[f"{name}_hour"] = hour_partition(bound)
    if conditions:
        entities = table_client.query_entities(" and ".join(conditions), parameters=parameters)
    else:
        entities = table_client.list_entities()
    for entity in entities:
        yield {key: value for key, value in entity.items() if key not in _ENTITY_KEYS}
