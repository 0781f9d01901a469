"""Rows in memory with an ETag each, changed by all-or-nothing transactions: the state the stores' in-memory twins share."""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Sequence

from .transactions import ConcurrentChange


KINDS = ("create", "replace", "touch", "upsert", "merge", "delete")


class RowExists(Exception):
    """A transaction created a row that is already there (Table storage answers 409)."""


class RowMissing(Exception):
    """A transaction replaced or touched a row that is not there (Table storage answers 404)."""


@dataclass(frozen=True)
class StoredRow:
    partition: str
    row: str
    value: object
    etag: str


@dataclass(frozen=True)
class Write:
    """One operation of a transaction, as Table storage has them.

    `create`: the row must be new. `replace`: the row must exist and, with `etag`, be unchanged
    since. `touch`: as `replace`, keeping the value (only the ETag changes: a room guard).
    `upsert`: replace or create. `merge`: a dict value's keys set on the row's dict, or a new row.
    `delete`: the row goes, if it is there.
    """

    kind: str
    partition: str
    row: str
    value: object = None
    etag: str | None = None


class MemoryTable:
    """What one Table holds, kept in memory; thread-safe. Twins of stores sharing a Table share one."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], StoredRow] = {}
        self._lock = threading.Lock()
        self._versions = itertools.count(1)

    def get(self, partition: str, row: str) -> StoredRow | None:
        with self._lock:
            return self._rows.get((partition, row))

    def rows(self, partition: str | None = None, low: str | None = None, high: str | None = None) -> list[StoredRow]:
        """Rows of one partition (or all), RowKey strictly between `low` and `high`, in Table order."""
        with self._lock:
            found = [
                stored for (pk, rk), stored in self._rows.items()
                if (partition is None or pk == partition)
                and (low is None or rk > low) and (high is None or rk < high)
            ]
        return sorted(found, key=lambda stored: (stored.partition, stored.row))

    def commit(self, writes: Sequence[Write]) -> list[StoredRow | None]:
        """Apply every write or none; answers each write's row as stored (None for a delete).

        Raises RowExists, RowMissing, or ConcurrentChange (an ETag that no longer matches).
        """
        with self._lock:
            for write in writes:
                if write.kind not in KINDS:
                    raise ValueError(f"unknown write {write.kind!r}; one of {', '.join(KINDS)}")
                current = self._rows.get((write.partition, write.row))
                if write.kind == "create" and current is not None:
                    raise RowExists(write.partition, write.row)
                if write.kind in ("replace", "touch"):
                    if current is None:
                        raise RowMissing(write.partition, write.row)
                    if write.etag is not None and current.etag != write.etag:
                        raise ConcurrentChange(write.partition)
            return [self._apply(write) for write in writes]

    def _apply(self, write: Write) -> StoredRow | None:
        key = (write.partition, write.row)
        if write.kind == "delete":
            self._rows.pop(key, None)
            return None
        value = write.value
        if write.kind == "touch":
            value = self._rows[key].value
        elif write.kind == "merge" and key in self._rows:
            value = {**self._rows[key].value, **write.value}
        stored = StoredRow(write.partition, write.row, value, f'W/"{next(self._versions)}"')
        self._rows[key] = stored
        return stored
