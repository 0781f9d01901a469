"""The in-memory twin of TableOutbox, reading the rows the calls' twin commits, for unit tests of the domain."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from .model import OutgoingEvent
from .outbox import PENDING, PREFIX, delivered_patch, events_from_entity, failed_patch, prefix_bounds
from ..core.clock import Clock
from ..storage.memory import MemoryTable, Write


class MemoryOutbox:
    """Outbox over the MemoryTable the rooms' and calls' twins share (the rooms table's stand-in)."""

    def __init__(self, table: MemoryTable, clock: Clock, prefix: str = PREFIX) -> None:
        self._table = table
        self._clock = clock
        self._low, self._high = prefix_bounds(prefix)

    def _rows(self, room_id: str | None = None) -> list[dict]:
        return [dict(stored.value) for stored in self._table.rows(room_id, self._low, self._high)]

    def pending(self, room_id: str) -> list:
        return [row for row in self._rows(room_id) if row["State"] == PENDING]

    def _merge(self, patches: Iterable[dict]) -> None:
        self._table.commit([Write("merge", patch["PartitionKey"], patch["RowKey"], patch) for patch in patches])

    def mark_delivered(self, room_id: str, entities: list) -> None:
        now = self._clock()
        self._merge(delivered_patch(room_id, e, now) for e in entities)

    def mark_failed(self, room_id: str, entities: list) -> None:
        now = self._clock()
        self._merge(failed_patch(room_id, e, now) for e in entities)

    def rooms_with_due_events(self) -> set[str]:
        now = self._clock()
        return {row["PartitionKey"] for row in self._rows() if row["State"] == PENDING and row["NextAttemptAt"] <= now}

    def history(
        self, *, room_id: str | None = None, server_call_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[OutgoingEvent]:
        rows = [
            row for row in self._rows(room_id)
            if (server_call_id is None or row["ServerCallId"] == server_call_id)
            and (since is None or row["EventTime"] >= since) and (until is None or row["EventTime"] < until)
        ]
        return [event for row in rows for event in events_from_entity(row)]
