"""The in-memory twin of TableRoomsStore: the same partition layout and ETag behaviour, for unit tests of the domain."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Sequence

from .model import Role, Room, RosterCounts
from .store import ROOM_ROW, Page, RoomIdTaken, RoomRecord, generation_bounds, new_generation, participant_row
from ..storage.memory import MemoryTable, RowExists, RowMissing, StoredRow, Write
from ..storage.transactions import ConcurrentChange


class MemoryRoomsStore:
    """RoomsStore in a MemoryTable; give the calls' and the outbox's twins the same table, as they share a partition.

    Unlike Table storage it has no transaction limit, so a roster change of any size commits in
    place and never switches generation.
    """

    def __init__(self, table: MemoryTable) -> None:
        self._table = table

    @staticmethod
    def _record(stored: StoredRow) -> RoomRecord:
        return replace(stored.value, etag=stored.etag)

    def create(self, room: Room, roster: dict[str, Role]) -> RoomRecord:
        generation = new_generation()
        record = RoomRecord(room, RosterCounts.of(roster.values()), generation, etag="")
        try:
            stored, *_ = self._table.commit([
                Write("create", room.id, ROOM_ROW, record),
                *(Write("upsert", room.id, participant_row(generation, raw_id), role) for raw_id, role in roster.items()),
            ])
        except RowExists as error:
            raise RoomIdTaken(room.id) from error
        return self._record(stored)

    def get(self, room_id: str) -> RoomRecord | None:
        stored = self._table.get(room_id, ROOM_ROW)
        return self._record(stored) if stored is not None else None

    def _replace(self, record: RoomRecord, updated: RoomRecord, *rows: Write) -> RoomRecord:
        try:
            stored, *_ = self._table.commit([
                Write("replace", record.room.id, ROOM_ROW, replace(updated, etag=""), etag=record.etag), *rows,
            ])
        except RowMissing as error:
            raise ConcurrentChange(record.room.id) from error
        return self._record(stored)

    def replace_room(self, record: RoomRecord, room: Room) -> RoomRecord:
        return self._replace(record, replace(record, room=room))

    def mark_deleted(self, record: RoomRecord, now: datetime) -> None:
        self._replace(record, replace(record, deleted=True, deleted_at=now))

    def purge(self, room_id: str) -> None:
        """Delete every row of the room's partition (its call's and outbox's too, as on Table storage)."""
        self._table.commit([Write("delete", stored.partition, stored.row) for stored in self._table.rows(room_id)])

    def _generation_rows(self, room_id: str, generation: str, after: str | None) -> list[tuple[str, Role]]:
        low, high = generation_bounds(generation)
        start = participant_row(generation, after) if after else low
        return [(stored.row[len(low):], stored.value) for stored in self._table.rows(room_id, start, high)]

    def roster(self, record: RoomRecord) -> dict[str, Role]:
        return dict(self._generation_rows(record.room.id, record.generation, None))

    def role_of(self, record: RoomRecord, raw_id: str) -> Role | None:
        stored = self._table.get(record.room.id, participant_row(record.generation, raw_id))
        return stored.value if stored is not None else None

    def commit_roster(
        self, record: RoomRecord, old: dict[str, Role], new: dict[str, Role], now: datetime, joined: Sequence[Write] = ()
    ) -> RoomRecord:
        """As TableRoomsStore's; `joined` (Writes) all commit in the one transaction, there being no limit here."""
        room_id, generation = record.room.id, record.generation
        rows = [
            Write("upsert", room_id, participant_row(generation, raw_id), role)
            for raw_id, role in new.items() if old.get(raw_id) != role
        ] + [Write("delete", room_id, participant_row(generation, raw_id)) for raw_id in old if raw_id not in new]
        return self._replace(record, replace(record, counts=RosterCounts.of(new.values())), *rows, *joined)

    def participants_page(self, room_id: str, generation: str, after: str | None, limit: int) -> Page:
        rows = self._generation_rows(room_id, generation, after)
        return Page(items=rows[:limit], after=rows[limit - 1][0] if len(rows) > limit else None)

    def _records(self) -> list[RoomRecord]:
        return [self._record(stored) for stored in self._table.rows() if stored.row == ROOM_ROW]

    def active_rooms_page(self, now: datetime, after: str | None, limit: int) -> Page:
        rooms = [
            record.room for record in self._records()
            if not record.deleted and record.room.valid_until > now and (after is None or record.room.id > after)
        ]
        return Page(items=rooms[:limit], after=rooms[limit - 1].id if len(rooms) > limit else None)

    def expired_room_ids(self, cutoff: datetime) -> list[str]:
        return [record.room.id for record in self._records() if record.room.valid_until < cutoff or record.deleted]

    def sweep_retired_generations(self, now: datetime) -> int:
        return 0  # generations never retire here (see the class)
