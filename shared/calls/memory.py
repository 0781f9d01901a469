"""The in-memory twins of TableCallsStore and TablePstnLines, with the same ETag behaviour, for unit tests of the domain."""
from __future__ import annotations

import threading
from dataclasses import replace
from typing import Sequence

from .model import Call, CallParticipant
from .pstn import MAX_CONCURRENT_CALLS_PER_NUMBER
from .store import CALL_ROW, endpoint_bounds, endpoint_row
from ..core.errors import ConcurrentCallLimitReached
from ..rooms.store import ROOM_ROW
from ..storage.memory import MemoryTable, RowExists, RowMissing, Write
from ..storage.transactions import ConcurrentChange


class MemoryCallsStore:
    """CallsStore in the MemoryTable of the rooms' twin, so a join's room guard sees the room's own ETag.

    Unlike Table storage it has no transaction limit: every endpoint commits in the one transaction.
    """

    def __init__(self, table: MemoryTable) -> None:
        self._table = table

    def current(self, room_id: str) -> Call | None:
        stored = self._table.get(room_id, CALL_ROW)
        if stored is None:
            return None
        low, high = endpoint_bounds(stored.value.server_call_id)
        endpoints = tuple(replace(row.value, etag=row.etag) for row in self._table.rows(room_id, low, high))
        return replace(stored.value, etag=stored.etag, participants=endpoints)

    def commit(
        self, before: Call | None, after: Call, changed: list[CallParticipant], extra: Sequence[dict] = (),
        room_etag: str | None = None,
    ) -> Call:
        room_id = after.room_id
        call = replace(after, participants=(), etag="")  # endpoints are rows of their own, as on Table storage
        writes = [
            Write("create", room_id, CALL_ROW, call) if before is None
            else Write("replace", room_id, CALL_ROW, call, etag=before.etag),
            *(Write("create", entity["PartitionKey"], entity["RowKey"], dict(entity)) for entity in extra),
        ]
        if room_etag is not None:
            writes.append(Write("touch", room_id, ROOM_ROW, etag=room_etag))
        writes += [
            Write("upsert", room_id, endpoint_row(after.server_call_id, p.participant_id), replace(p, etag=""))
            for p in changed
        ]
        # The same outcomes as TableCallsStore.commit's error mapping.
        try:
            stored = self._table.commit(writes)
        except RowExists as error:
            if before is None:
                raise ConcurrentChange(room_id) from error
            raise
        except RowMissing as error:
            if room_etag is not None:
                raise ConcurrentChange(room_id) from error
            raise
        return replace(after, etag=stored[0].etag)

    def staged_commit(
        self, before: Call, after: Call, changed: list[CallParticipant], extra: Sequence[dict] = ()
    ) -> list[Write]:
        room_id = after.room_id
        return [
            Write("replace", room_id, CALL_ROW, replace(after, participants=(), etag=""), etag=before.etag),
            *(Write("create", entity["PartitionKey"], entity["RowKey"], dict(entity)) for entity in extra),
            *(Write("replace", room_id, endpoint_row(after.server_call_id, p.participant_id), replace(p, etag=""),
                    etag=p.etag) for p in changed),
        ]

    def update_endpoint(
        self, room_id: str, call_id: str, participant: CallParticipant, room_etag: str | None = None
    ) -> CallParticipant:
        row = endpoint_row(call_id, participant.participant_id)
        writes = [Write("replace", room_id, row, replace(participant, etag=""), etag=participant.etag)]
        if room_etag is not None:
            writes.append(Write("touch", room_id, ROOM_ROW, etag=room_etag))
        try:
            stored, *_ = self._table.commit(writes)
        except RowMissing as error:
            raise ConcurrentChange(room_id) from error
        return replace(participant, etag=stored.etag)

    def active_call_rooms(self) -> list[str]:
        return [
            stored.partition for stored in self._table.rows()
            if stored.row == CALL_ROW and stored.value.state == "active"
        ]


class MemoryPstnLines:
    """PstnLines in a dict; a lock stands in for the Table entity's ETag."""

    def __init__(self, limit: int = MAX_CONCURRENT_CALLS_PER_NUMBER) -> None:
        self._calls: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def acquire(self, number: str, reference: str) -> None:
        with self._lock:
            calls = self._calls.setdefault(number, [])
            if reference in calls:
                return
            if len(calls) >= self._limit:
                raise ConcurrentCallLimitReached(number, self._limit)
            calls.append(reference)

    def release(self, number: str, reference: str) -> None:
        with self._lock:
            if reference in self._calls.get(number, []):
                self._calls[number].remove(reference)
