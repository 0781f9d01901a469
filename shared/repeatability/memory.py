"""The in-memory twin of TableRepeatabilityStore, with the same ETag race for stale attempts, for unit tests of the domain."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from .store import ATTEMPT_ROW, Attempt, StoredResponse
from ..storage.memory import MemoryTable, RowExists, RowMissing, StoredRow, Write
from ..storage.transactions import ConcurrentChange


class MemoryRepeatabilityStore:
    """RepeatabilityStore in a MemoryTable."""

    def __init__(self, table: MemoryTable) -> None:
        self._table = table

    @staticmethod
    def _attempt(stored: StoredRow) -> Attempt:
        return replace(stored.value, etag=stored.etag)

    def reserve(self, attempt: Attempt) -> bool:
        try:
            self._table.commit([Write("create", attempt.request_id, ATTEMPT_ROW, attempt)])
        except RowExists:
            return False
        return True

    def get(self, request_id: str) -> Attempt | None:
        stored = self._table.get(request_id, ATTEMPT_ROW)
        return self._attempt(stored) if stored is not None else None

    def claim(self, attempt: Attempt, now: datetime) -> Attempt | None:
        claimed = replace(attempt, started_at=now, etag="")
        try:
            [stored] = self._table.commit([Write("replace", attempt.request_id, ATTEMPT_ROW, claimed, etag=attempt.etag)])
        except (ConcurrentChange, RowMissing):
            return None
        return self._attempt(stored)

    def finish(self, attempt: Attempt, response: StoredResponse) -> None:
        done = replace(attempt, response=response, etag="")
        self._table.commit([Write("upsert", attempt.request_id, ATTEMPT_ROW, done)])

    def forget(self, request_id: str) -> None:
        self._table.commit([Write("delete", request_id, ATTEMPT_ROW)])

    def sweep(self, cutoff: datetime) -> int:
        old = [stored for stored in self._table.rows() if stored.value.started_at < cutoff]
        self._table.commit([Write("delete", stored.partition, stored.row) for stored in old])
        return len(old)
