"""Rooms use cases: create, read, update, delete, list, and roster changes, with ACS's rules."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ..core.clock import Clock
from ..core.errors import InvalidRequest, RoomNotFound
from .model import (
    CreateRoomRequest,
    Role,
    Room,
    UpdateRoomRequest,
    check_room_id,
    check_window,
    default_window,
    new_room_id,
)
from ..storage.retry import ConflictRetry
from .changes import RoomChanges, StagedWrites
from .store import Page, RoomIdTaken, RoomRecord, RoomsStore

# Concurrent changes to one room retry on ETag conflicts; enough attempts that dozens of
# simultaneous writers all get through, each waiting a little random time so they spread out.
ROOM_WRITES = ConflictRetry(attempts=60, first_pause=0.005, max_pause=0.2)
# A generated room id is taken only when another instance made the same one in the same centisecond.
ROOM_ID_ATTEMPTS = 10


@dataclass(frozen=True)
class RosterUpdate:
    """What a participants PATCH did, for the answer and the operation log."""

    record: RoomRecord
    upserted: int
    removed: int


class RoomsService:
    def __init__(
        self, store: RoomsStore, clock: Clock, max_participants: int, changes: RoomChanges | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_participants = max_participants
        # Deletions and roster removals are published here once committed (live calls follow them).
        self._changes = changes if changes is not None else RoomChanges()

    def _check_roster_size(self, size: int) -> None:
        if size > self._max_participants:
            raise InvalidRequest(
                f"A room can have at most {self._max_participants} participants; this request would make {size}."
            )

    def create(self, request: CreateRoomRequest, room_id: str | None = None) -> RoomRecord:
        """Create a room. `room_id` pins the id (repeatable creates reserve it up front).

        Raises InvalidArgument for an invalid window, InvalidRequest for too many participants.
        With a pinned id that already exists, raises RoomIdTaken so the caller can answer with the
        existing room (also after ROOM_ID_ATTEMPTS generated ids that were all taken).
        """
        now = self._clock()
        valid_from, valid_until = default_window(request.valid_from, request.valid_until, now)
        check_window(valid_from, valid_until, now)
        self._check_roster_size(len(request.participants))
        attempts = 1 if room_id is not None else ROOM_ID_ATTEMPTS
        for attempt in range(attempts):
            room = Room(
                id=room_id or new_room_id(now),
                created_at=now,
                valid_from=valid_from,
                valid_until=valid_until,
                pstn_dial_out_enabled=request.pstn_dial_out_enabled,
            )
            try:
                return self._store.create(room, request.participants)
            except RoomIdTaken:
                if attempt + 1 == attempts:
                    raise

    def get(self, room_id: str) -> RoomRecord:
        """The live room. Raises InvalidRequest for a malformed id, RoomNotFound for an unknown or deleted room."""
        check_room_id(room_id)
        record = self._store.get(room_id)
        if record is None or record.deleted:
            raise RoomNotFound(room_id)
        return record

    def get_even_deleted(self, room_id: str) -> RoomRecord:
        """The room as stored, deleted or not: a deleted room stays until the sweep purges it, so
        its last call can still be read. Raises InvalidRequest for a malformed id, RoomNotFound for
        an id unknown or purged."""
        check_room_id(room_id)
        record = self._store.get(room_id)
        if record is None:
            raise RoomNotFound(room_id)
        return record

    def find(self, room_id: str) -> RoomRecord | None:
        """The live room with this id, or None (no validation; for recovering repeatable creates)."""
        record = self._store.get(room_id)
        return record if record is not None and not record.deleted else None

    def update(self, room_id: str, request: UpdateRoomRequest, as_read: RoomRecord | None = None) -> RoomRecord:
        """Merge-patch the room; the merged window must pass the same rules as on create.

        `as_read` is the room as the caller just read it: the first attempt starts from it (the
        ETag still catches any change since; a retry reads afresh).
        """
        def attempt(number: int) -> RoomRecord:
            record = as_read if number == 0 and as_read is not None else self.get(room_id)
            room = request.apply(record.room)
            if (room.valid_from, room.valid_until) != (record.room.valid_from, record.room.valid_until):
                check_window(room.valid_from, room.valid_until, self._clock())
            if room == record.room:
                return record
            return self._store.replace_room(record, room)

        return ROOM_WRITES.run(attempt, "The room is changing too often; retry later.")

    def delete(self, room_id: str) -> RoomRecord | None:
        """Delete a room: it is not found from now on, and the sweep removes its rows `grace` later.

        Deleting an already deleted room succeeds again until the sweep (so a retried DELETE does
        not fail); an id that never existed raises RoomNotFound. Returns the room's record for the log.
        """
        check_room_id(room_id)

        def attempt(_number: int) -> tuple[RoomRecord, bool]:
            record = self._store.get(room_id)
            if record is None:
                raise RoomNotFound(room_id)
            if record.deleted:
                return record, False
            self._store.mark_deleted(record, self._clock())
            return record, True

        record, deleted_now = ROOM_WRITES.run(attempt, "The room is changing too often; retry later.")
        if deleted_now:
            self._changes.room_deleted(room_id)
        return record

    def list_active(self, after: str | None, limit: int) -> Page:
        return self._store.active_rooms_page(self._clock(), after, limit)

    def list_participants(
        self, room_id: str, generation: str | None, after: str | None, limit: int
    ) -> tuple[Page, str]:
        """One page of the roster; a cursor keeps reading the generation it started on."""
        record = self.get(room_id)
        generation = generation or record.generation
        return self._store.participants_page(room_id, generation, after, limit), generation

    def update_participants(
        self, room_id: str, changes: dict[str, Role | None], as_read: RoomRecord | None = None
    ) -> RosterUpdate:
        """Upsert (role) or remove (None) roster entries, all or nothing (`as_read` as for `update`).

        Removing someone not on the roster is a no-op. Concurrent calls for one room serialise on
        the room's ETag and each is retried until it applies, so no change is lost. The roster limit
        applies to the roster the change leaves (a request may remove many and add a few). What the
        observers stage (a live call turning off what a new role lacks) commits with the roster.
        """
        def attempt(number: int) -> tuple[RoomRecord, set[str], list[StagedWrites]]:
            record = as_read if number == 0 and as_read is not None else self.get(room_id)
            old = self._store.roster(record)
            new = dict(old)
            for raw_id, role in changes.items():
                if role is None:
                    new.pop(raw_id, None)
                else:
                    new[raw_id] = role
            self._check_roster_size(len(new))
            if new == old:
                return record, set(), []
            staged = self._changes.roster_changing(record, old, new)
            joined = [operation for writes in staged for operation in writes.operations]
            updated = self._store.commit_roster(record, old, new, self._clock(), joined)
            return updated, {raw_id for raw_id in old if raw_id not in new}, staged

        updated, removed, staged = ROOM_WRITES.run(attempt, "The room's roster is changing too often; retry later.")
        for writes in staged:
            writes.committed()
        if removed:
            self._changes.users_removed(room_id, removed)
        upserted = sum(1 for role in changes.values() if role is not None)
        return RosterUpdate(updated, upserted=upserted, removed=len(changes) - upserted)

    def role_of_in(self, record: RoomRecord, raw_id: str) -> Role | None:
        """The live role of `raw_id` in the room as read in `record`, None when not on the roster."""
        return self._store.role_of(record, raw_id)

    def roster_of(self, record: RoomRecord) -> dict[str, Role]:
        return self._store.roster(record)

    def sweep(self, grace: timedelta) -> int:
        """Purge rooms past validity plus `grace`, and rooms deleted more than `grace` ago (their
        last call stays readable as long as an expired room's); returns how many went."""
        now = self._clock()
        cutoff = now - grace
        purged = 0
        for room_id in self._store.expired_room_ids(cutoff):
            record = self._store.get(room_id)
            if record is None:
                continue
            deleted_long_ago = record.deleted and (record.deleted_at is None or record.deleted_at < cutoff)
            if deleted_long_ago or record.room.valid_until < cutoff:
                self._store.purge(room_id)
                purged += 1
        self._store.sweep_retired_generations(now)
        return purged
