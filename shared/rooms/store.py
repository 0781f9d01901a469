"""Where rooms and rosters live: the RoomsStore port and its Table implementation, one partition per room.

Layout of a room's partition (PartitionKey = room id):
- RowKey `room`: the room, its roster counts, the current roster generation and a delete mark.
- RowKey `p<generation>|<raw id>`: one roster entry of that generation.

A roster change commits as one transaction with an If-Match on the room entity, so concurrent
changes never lose one another. A change too large for one transaction writes a whole new
generation first and then switches the room to it with the same If-Match; readers never see half
of it. Old generations stay readable for a while (open paging cursors) and are swept later.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol, Sequence

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from .model import Role, Room, RosterCounts
from ..storage.faults import storage_faults
from ..storage.tables import TableStore
from ..storage.transactions import (
    MAX_TRANSACTION_OPERATIONS,
    ConcurrentChange,
    check_transaction,
    chunked,
    is_conflict,
    is_precondition_failure,
)
from ..core.timefmt import assume_utc

ROOM_ROW = "room"
RETIRED_GENERATION_TTL = timedelta(minutes=15)


class RoomIdTaken(Exception):
    """Raised by `create` when the generated id is already in use; the caller picks another."""


@dataclass(frozen=True)
class RoomRecord:
    """A stored room with what is needed to change it safely."""

    room: Room
    counts: RosterCounts
    generation: str
    etag: str
    deleted: bool = False
    retired: tuple[tuple[str, datetime], ...] = ()
    deleted_at: datetime | None = None  # when it was deleted (None for rooms deleted before this was kept)


@dataclass(frozen=True)
class Page:
    items: list
    after: str | None  # the cursor for the next page, None on the last one


class RoomsStore(Protocol):
    def create(self, room: Room, roster: dict[str, Role]) -> RoomRecord: ...
    def get(self, room_id: str) -> RoomRecord | None: ...
    def replace_room(self, record: RoomRecord, room: Room) -> RoomRecord: ...
    def mark_deleted(self, record: RoomRecord, now: datetime) -> None: ...
    def purge(self, room_id: str) -> None: ...
    def roster(self, record: RoomRecord) -> dict[str, Role]: ...
    def role_of(self, record: RoomRecord, raw_id: str) -> Role | None: ...
    def commit_roster(
        self, record: RoomRecord, old: dict[str, Role], new: dict[str, Role], now: datetime, joined: Sequence = ()
    ) -> RoomRecord: ...
    def participants_page(
        self, room_id: str, generation: str, after: str | None, limit: int
    ) -> Page: ...
    def active_rooms_page(self, now: datetime, after: str | None, limit: int) -> Page: ...
    def expired_room_ids(self, cutoff: datetime) -> list[str]: ...
    def sweep_retired_generations(self, now: datetime) -> int: ...


def new_generation() -> str:
    return secrets.token_hex(4)


def participant_row(generation: str, raw_id: str) -> str:
    return f"p{generation}|{raw_id}"


def generation_bounds(generation: str) -> tuple[str, str]:
    # '}' sorts right after '|', so [p<gen>|, p<gen>}) holds exactly one generation's rows.
    return f"p{generation}|", f"p{generation}}}"


def room_unchanged(room_id: str, etag: str) -> tuple:
    """A transaction operation requiring the room entity unchanged since `etag`.

    A merge of no properties: it changes nothing but the room's ETag, and only if unchanged. A call
    change in the room's partition includes it to commit only while the room (roster, window,
    deletion mark) is as the change read it.
    """
    return (
        "update", {"PartitionKey": room_id, "RowKey": ROOM_ROW},
        {"mode": UpdateMode.MERGE, "etag": etag, "match_condition": MatchConditions.IfNotModified},
    )


class TableRoomsStore:
    """RoomsStore on Azure Table storage (Azurite locally)."""

    def __init__(self, tables: TableStore, table_name: str) -> None:
        self._tables = tables
        self._table_name = table_name

    @property
    def _table(self):
        return self._tables.table(self._table_name)

    # -- entities <-> records -------------------------------------------------------------
    @staticmethod
    def _room_entity(record: RoomRecord) -> dict:
        room, counts = record.room, record.counts
        return {
            "PartitionKey": room.id,
            "RowKey": ROOM_ROW,
            "CreatedAt": room.created_at,
            "ValidFrom": room.valid_from,
            "ValidUntil": room.valid_until,
            "PstnDialOutEnabled": room.pstn_dial_out_enabled,
            "Deleted": record.deleted,
            "DeletedAt": record.deleted_at,
            "Generation": record.generation,
            "Presenters": counts.presenters,
            "Attendees": counts.attendees,
            "Consumers": counts.consumers,
            "Collaborators": counts.collaborators,
            "Retired": json.dumps([[gen, at.isoformat()] for gen, at in record.retired]),
        }

    @staticmethod
    def _record(entity) -> RoomRecord:
        room = Room(
            id=entity["PartitionKey"],
            created_at=assume_utc(entity["CreatedAt"]),
            valid_from=assume_utc(entity["ValidFrom"]),
            valid_until=assume_utc(entity["ValidUntil"]),
            pstn_dial_out_enabled=bool(entity.get("PstnDialOutEnabled", False)),
        )
        counts = RosterCounts(
            presenters=entity.get("Presenters", 0),
            attendees=entity.get("Attendees", 0),
            consumers=entity.get("Consumers", 0),
            collaborators=entity.get("Collaborators", 0),
        )
        retired = tuple(
            (gen, datetime.fromisoformat(at)) for gen, at in json.loads(entity.get("Retired") or "[]")
        )
        return RoomRecord(
            room=room,
            counts=counts,
            generation=entity["Generation"],
            etag=entity.metadata["etag"],
            deleted=bool(entity.get("Deleted", False)),
            retired=retired,
            deleted_at=assume_utc(entity.get("DeletedAt")),
        )

    # -- rooms ------------------------------------------------------------------------------
    def create(self, room: Room, roster: dict[str, Role]) -> RoomRecord:
        """Insert the room and its roster. Raises RoomIdTaken if the id exists."""
        generation = new_generation()
        record = RoomRecord(room, RosterCounts.of(roster.values()), generation, etag="")
        rows = [self._participant_op("upsert", room.id, generation, raw_id, role) for raw_id, role in roster.items()]
        with storage_faults():
            if len(rows) < MAX_TRANSACTION_OPERATIONS:
                operations = [("create", self._room_entity(record)), *rows]
                check_transaction(operations)
                try:
                    self._table.submit_transaction(operations)
                except Exception as error:  # a conflicting insert fails the whole transaction
                    if is_conflict(error):
                        raise RoomIdTaken(room.id) from error
                    raise
            else:
                # Too many rows for one transaction: write the roster first, then the room entity
                # that makes it visible. A crash in between leaves only unreachable rows.
                if self.get(room.id) is not None:
                    raise RoomIdTaken(room.id)
                for chunk in chunked(rows):
                    self._table.submit_transaction(chunk)
                try:
                    self._table.create_entity(self._room_entity(record))
                except ResourceExistsError as error:
                    raise RoomIdTaken(room.id) from error
        return self.get(room.id)

    def get(self, room_id: str) -> RoomRecord | None:
        with storage_faults():
            try:
                return self._record(self._table.get_entity(room_id, ROOM_ROW))
            except ResourceNotFoundError:
                return None

    def _replace(self, record: RoomRecord) -> RoomRecord:
        with storage_faults():
            try:
                metadata = self._table.update_entity(
                    self._room_entity(record),
                    mode=UpdateMode.REPLACE,
                    etag=record.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError) as error:
                raise ConcurrentChange(record.room.id) from error
            except Exception as error:
                if is_precondition_failure(error):
                    raise ConcurrentChange(record.room.id) from error
                raise
        return replace(record, etag=metadata["etag"])

    def replace_room(self, record: RoomRecord, room: Room) -> RoomRecord:
        """Store new room fields if the room is unchanged since `record` was read."""
        return self._replace(replace(record, room=room))

    def mark_deleted(self, record: RoomRecord, now: datetime) -> None:
        """Mark the room deleted at `now` (it answers 404 from now on); `purge` removes its rows."""
        self._replace(replace(record, deleted=True, deleted_at=now))

    def purge(self, room_id: str) -> None:
        """Delete every entity of the room, the room entity last so an interrupted purge is redone."""
        with storage_faults():
            keys = [
                entity["RowKey"]
                for entity in self._table.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": room_id}, select=["RowKey"]
                )
            ]
            self._delete_rows(room_id, [key for key in keys if key != ROOM_ROW])
            if ROOM_ROW in keys:
                self._table.delete_entity(room_id, ROOM_ROW)

    def _delete_rows(self, room_id: str, row_keys: list[str]) -> None:
        """Delete rows of one partition, a transaction per 100; rows already gone are no error.

        Every instance runs the same timers at the same second, so two sweeps often delete one
        room's rows side by side. A transaction fails whole when one of its rows is missing; the
        rows the other instance has not reached yet are then deleted one by one, which tolerates
        missing rows, so neither sweep fails nor leaves rows behind.
        """
        operations = [("delete", {"PartitionKey": room_id, "RowKey": key}) for key in row_keys]
        with storage_faults():
            for chunk in chunked(operations):
                try:
                    self._table.submit_transaction(chunk)
                except TableTransactionError as error:
                    if error.status_code != 404:
                        raise
                    for _, entity in chunk:
                        self._table.delete_entity(entity["PartitionKey"], entity["RowKey"])

    # -- roster -------------------------------------------------------------------------------
    @staticmethod
    def _participant_op(kind: str, room_id: str, generation: str, raw_id: str, role: Role | None = None):
        entity = {"PartitionKey": room_id, "RowKey": participant_row(generation, raw_id)}
        if kind == "upsert":
            entity["Role"] = role.value
            return ("upsert", entity, {"mode": UpdateMode.REPLACE})
        return ("delete", entity)

    def _generation_rows(self, room_id: str, generation: str, after: str | None, limit: int | None):
        low, high = generation_bounds(generation)
        start = participant_row(generation, after) if after else low
        query = "PartitionKey eq @pk and RowKey gt @start and RowKey lt @high"
        with storage_faults():
            entities = self._table.query_entities(
                query,
                parameters={"pk": room_id, "start": start, "high": high},
                select=["RowKey", "Role"],
                results_per_page=min(limit + 1, 1000) if limit else 1000,
            )
            for index, entity in enumerate(entities):
                if limit is not None and index > limit:
                    return
                yield entity["RowKey"][len(low):], Role(entity["Role"])

    def roster(self, record: RoomRecord) -> dict[str, Role]:
        return dict(self._generation_rows(record.room.id, record.generation, None, None))

    def role_of(self, record: RoomRecord, raw_id: str) -> Role | None:
        with storage_faults():
            try:
                entity = self._table.get_entity(record.room.id, participant_row(record.generation, raw_id))
            except ResourceNotFoundError:
                return None
        return Role(entity["Role"])

    def commit_roster(
        self, record: RoomRecord, old: dict[str, Role], new: dict[str, Role], now: datetime, joined: Sequence = ()
    ) -> RoomRecord:
        """Replace roster `old` (as read with `record`) by `new`, atomically.

        `joined`: transaction operations of other rows of the room's partition (a call's), in order,
        committed in the same transaction as the switch to the new roster; those beyond the
        transaction's room are applied right after it, each alone, and skipped when their row
        changed since it was read (an If-Match that fails), since that change came later.
        Raises ConcurrentChange if the room (or a joined row) changed since `record` was read;
        nothing is then visible.
        """
        room_id = record.room.id
        changes = [
            self._participant_op("upsert", room_id, record.generation, raw_id, role)
            for raw_id, role in new.items()
            if old.get(raw_id) != role
        ] + [
            self._participant_op("delete", room_id, record.generation, raw_id)
            for raw_id in old
            if raw_id not in new
        ]
        updated = replace(record, counts=RosterCounts.of(new.values()))
        if 1 + len(changes) + len(joined) <= MAX_TRANSACTION_OPERATIONS:
            return self._switch(record, updated, [*changes, *joined])
        # Copy on write: the new generation is invisible until the room entity points at it.
        generation = new_generation()
        rows = [self._participant_op("upsert", room_id, generation, raw_id, role) for raw_id, role in new.items()]
        with storage_faults():
            for chunk in chunked(rows):
                self._table.submit_transaction(chunk)
        switched = replace(
            updated,
            generation=generation,
            retired=(*record.retired, (record.generation, now)),
        )
        room_left = MAX_TRANSACTION_OPERATIONS - 1
        try:
            committed = self._switch(record, switched, list(joined[:room_left]))
        except ConcurrentChange:
            self._delete_generation(room_id, generation)
            raise
        self._apply_each(joined[room_left:])
        return committed

    def _switch(self, record: RoomRecord, updated: RoomRecord, operations: list) -> RoomRecord:
        """Replace the room entity by `updated` if unchanged since `record`, with `operations` in the
        same transaction; ConcurrentChange when the room or one of their rows changed."""
        room_op = (
            "update",
            self._room_entity(updated),
            {"mode": UpdateMode.REPLACE, "etag": record.etag, "match_condition": MatchConditions.IfNotModified},
        )
        transaction = [room_op, *operations]
        check_transaction(transaction)
        with storage_faults():
            try:
                result = self._table.submit_transaction(transaction)
            except Exception as error:
                if is_precondition_failure(error) or getattr(error, "status_code", None) == 404:
                    raise ConcurrentChange(record.room.id) from error
                raise
        return replace(updated, etag=result[0]["etag"])

    def _apply_each(self, operations: Sequence) -> None:
        """Operations that did not fit a transaction, one by one; one whose row changed is skipped."""
        with storage_faults():
            for operation in operations:
                try:
                    self._table.submit_transaction([operation])
                except Exception as error:
                    if not (is_precondition_failure(error) or getattr(error, "status_code", None) == 404):
                        raise

    def _delete_generation(self, room_id: str, generation: str) -> int:
        rows = [participant_row(generation, raw_id) for raw_id, _ in self._generation_rows(room_id, generation, None, None)]
        self._delete_rows(room_id, rows)
        return len(rows)

    def participants_page(self, room_id: str, generation: str, after: str | None, limit: int) -> Page:
        rows = list(self._generation_rows(room_id, generation, after, limit))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(items=rows, after=rows[-1][0] if more else None)

    # -- listing and sweeping ---------------------------------------------------------------
    def active_rooms_page(self, now: datetime, after: str | None, limit: int) -> Page:
        query = "RowKey eq @room and Deleted eq false and ValidUntil gt @now"
        parameters = {"room": ROOM_ROW, "now": now}
        if after:
            query += " and PartitionKey gt @after"
            parameters["after"] = after
        rooms: list[Room] = []
        with storage_faults():
            for entity in self._table.query_entities(query, parameters=parameters, results_per_page=limit + 1):
                rooms.append(self._record(entity).room)
                if len(rooms) > limit:
                    break
        more = len(rooms) > limit
        rooms = rooms[:limit]
        return Page(items=rooms, after=rooms[-1].id if more else None)

    def expired_room_ids(self, cutoff: datetime) -> list[str]:
        """Rooms whose validity ended before `cutoff`, and rooms marked deleted."""
        query = "RowKey eq @room and (ValidUntil lt @cutoff or Deleted eq true)"
        with storage_faults():
            return [
                entity["PartitionKey"]
                for entity in self._table.query_entities(
                    query, parameters={"room": ROOM_ROW, "cutoff": cutoff}, select=["PartitionKey"]
                )
            ]

    def sweep_retired_generations(self, now: datetime) -> int:
        """Delete roster generations retired long enough ago that no open cursor still reads them."""
        swept = 0
        with storage_faults():
            candidates = list(
                self._table.query_entities("RowKey eq @room and Retired ne '[]'", parameters={"room": ROOM_ROW})
            )
        for entity in candidates:
            record = self._record(entity)
            keep = tuple((gen, at) for gen, at in record.retired if now - at < RETIRED_GENERATION_TTL)
            for gen, at in record.retired:
                if now - at >= RETIRED_GENERATION_TTL:
                    swept += self._delete_generation(record.room.id, gen)
            if keep != record.retired:
                try:
                    self._replace(replace(record, retired=keep))
                except ConcurrentChange:
                    pass  # the next sweep tidies the list; the rows are already gone
        return swept
