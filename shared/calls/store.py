"""Where room calls live: the CallsStore port and its Table implementation, in the room's own partition.

RowKey `call` holds the room's current (or last) call; RowKey `cp|<serverCallId>|<participantId>`
one endpoint of that call. Every change of who is in the call commits as one transaction with an
If-Match on the call entity, so simultaneous joins and leaves serialise there and none is lost.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Protocol, Sequence

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from .model import AutomationContext, Call, CallConnection, CallParticipant, EndpointKind
from ..rooms.model import Role
from ..rooms.store import room_unchanged
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

CALL_ROW = "call"


def endpoint_row(call_id: str, participant_id: str) -> str:
    return f"cp|{call_id}|{participant_id}"


def endpoint_bounds(call_id: str) -> tuple[str, str]:
    # '}' sorts right after '|', so (cp|<call>|, cp|<call>}) holds exactly one call's endpoints.
    return f"cp|{call_id}|", f"cp|{call_id}}}"


class CallsStore(Protocol):
    def current(self, room_id: str) -> Call | None: ...
    def commit(
        self, before: Call | None, after: Call, changed: list[CallParticipant], extra: Sequence[dict] = (),
        room_etag: str | None = None,
    ) -> Call: ...
    def staged_commit(
        self, before: Call, after: Call, changed: list[CallParticipant], extra: Sequence[dict] = ()
    ) -> list: ...
    def update_endpoint(
        self, room_id: str, call_id: str, participant: CallParticipant, room_etag: str | None = None
    ) -> CallParticipant: ...
    def active_call_rooms(self) -> list[str]: ...


class TableCallsStore:
    """CallsStore on Azure Table storage, in the rooms table."""

    def __init__(self, tables: TableStore, table_name: str) -> None:
        self._tables = tables
        self._table_name = table_name  # the rooms table: calls share each room's partition

    @property
    def _table(self):
        return self._tables.table(self._table_name)

    @staticmethod
    def _call_entity(call: Call) -> dict:
        return {
            "PartitionKey": call.room_id,
            "RowKey": CALL_ROW,
            "ServerCallId": call.server_call_id,
            "State": call.state,
            "StartedAt": call.started_at,
            "StartedBy": call.started_by,
            "Connected": call.connected,
            "Sequence": call.sequence,
            "CorrelationId": call.correlation_id,
            "EndedAt": call.ended_at,
            "EndReason": call.end_reason,
            # A handful at most: kept on the call entity so they change under its ETag with the call.
            "Connections": json.dumps([c.to_json() for c in call.connections]),
        }

    @staticmethod
    def _participant_entity(room_id: str, call_id: str, p: CallParticipant) -> dict:
        return {
            "PartitionKey": room_id,
            "RowKey": endpoint_row(call_id, p.participant_id),
            "RawId": p.raw_id,
            "Kind": p.kind.value,
            "State": p.state,
            "Muted": p.muted,
            "VideoOn": p.video_on,
            "ScreenSharing": p.screen_sharing,
            "JoinedAt": p.joined_at,
            "LeftAt": p.left_at,
            "LeaveReason": p.leave_reason,
            "SourceNumber": p.source_number,
            "JoinedRole": p.joined_role.value if p.joined_role else None,
            "Automation": json.dumps(p.automation.to_json()) if p.automation else None,
            "DisplayName": p.display_name,
        }

    @staticmethod
    def _participant(entity) -> CallParticipant:
        return CallParticipant(
            participant_id=entity["RowKey"].rsplit("|", 1)[1],
            raw_id=entity["RawId"],
            kind=EndpointKind(entity["Kind"]),
            state=entity["State"],
            joined_at=assume_utc(entity.get("JoinedAt")),
            muted=bool(entity.get("Muted")),
            video_on=bool(entity.get("VideoOn")),
            screen_sharing=bool(entity.get("ScreenSharing")),
            left_at=assume_utc(entity.get("LeftAt")),
            leave_reason=entity.get("LeaveReason"),
            source_number=entity.get("SourceNumber"),
            joined_role=Role(entity["JoinedRole"]) if entity.get("JoinedRole") else None,
            automation=AutomationContext.from_json(json.loads(entity["Automation"])) if entity.get("Automation") else None,
            display_name=entity.get("DisplayName"),
            etag=entity.metadata["etag"],
        )

    def current(self, room_id: str) -> Call | None:
        """The room's current or last call with its endpoints, or None if it never had one."""
        with storage_faults():
            try:
                entity = self._table.get_entity(room_id, CALL_ROW)
            except ResourceNotFoundError:
                return None
            call_id = entity["ServerCallId"]
            low, high = endpoint_bounds(call_id)
            rows = self._table.query_entities(
                "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
                parameters={"pk": room_id, "low": low, "high": high},
            )
            participants = tuple(self._participant(row) for row in rows)
        return Call(
            room_id=room_id,
            server_call_id=call_id,
            state=entity["State"],
            started_at=assume_utc(entity["StartedAt"]),
            started_by=entity["StartedBy"],
            connected=entity["Connected"],
            sequence=entity["Sequence"],
            correlation_id=entity["CorrelationId"],
            ended_at=assume_utc(entity.get("EndedAt")),
            end_reason=entity.get("EndReason"),
            etag=entity.metadata["etag"],
            participants=participants,
            connections=tuple(CallConnection.from_json(c) for c in json.loads(entity.get("Connections") or "[]")),
        )

    def commit(
        self, before: Call | None, after: Call, changed: list[CallParticipant], extra: Sequence[dict] = (),
        room_etag: str | None = None,
    ) -> Call:
        """Write the new call state and the changed endpoints as one transaction.

        `before` is the call as read (None when the room never had a call); raises ConcurrentChange
        if the call entity changed since, or, with `room_etag`, if the room entity did (its roster,
        window or deletion mark: the transaction touches it under that If-Match). `extra` entities
        (e.g. outgoing events) join the same transaction. Endpoints beyond one transaction's room
        are written right after, idempotently.
        """
        call_entity = self._call_entity(after)
        if before is None:
            call_op = ("create", call_entity)
        else:
            call_op = (
                "update",
                call_entity,
                {"mode": UpdateMode.REPLACE, "etag": before.etag, "match_condition": MatchConditions.IfNotModified},
            )
        rows = [
            ("upsert", self._participant_entity(after.room_id, after.server_call_id, p), {"mode": UpdateMode.REPLACE})
            for p in changed
        ]
        extra_ops = [("create", entity) for entity in extra]
        if room_etag is not None:
            extra_ops.append(room_unchanged(after.room_id, room_etag))
        room_left = MAX_TRANSACTION_OPERATIONS - 1 - len(extra_ops)
        operations = [call_op, *extra_ops, *rows[:room_left]]
        check_transaction(operations)
        with storage_faults():
            try:
                result = self._table.submit_transaction(operations)
            except Exception as error:
                if (is_precondition_failure(error) or (before is None and is_conflict(error))
                        or (room_etag is not None and getattr(error, "status_code", None) == 404)):
                    raise ConcurrentChange(after.room_id) from error
                raise
            for chunk in chunked(rows[room_left:]):
                self._table.submit_transaction(chunk)
        return replace(after, etag=result[0]["etag"])

    def _endpoint_update(self, room_id: str, call_id: str, participant: CallParticipant) -> tuple:
        """A transaction operation replacing the endpoint's row if unchanged since it was read."""
        return (
            "update", self._participant_entity(room_id, call_id, participant),
            {"mode": UpdateMode.REPLACE, "etag": participant.etag, "match_condition": MatchConditions.IfNotModified},
        )

    def staged_commit(
        self, before: Call, after: Call, changed: list[CallParticipant], extra: Sequence[dict] = ()
    ) -> list:
        """The operations of a change of an existing call, for a transaction of the room's partition
        that another store submits (a roster change): the call entity and each changed endpoint
        If-Match as read, then `extra` (outbox rows). The call's operations come first, so they are
        in the transaction whatever else it holds; endpoints may follow it."""
        call_op = (
            "update", self._call_entity(after),
            {"mode": UpdateMode.REPLACE, "etag": before.etag, "match_condition": MatchConditions.IfNotModified},
        )
        return [call_op, *(("create", entity) for entity in extra),
                *(self._endpoint_update(after.room_id, after.server_call_id, p) for p in changed)]

    def update_endpoint(
        self, room_id: str, call_id: str, participant: CallParticipant, room_etag: str | None = None
    ) -> CallParticipant:
        """Change one endpoint's media flags if it is unchanged since read (and, with `room_etag`, the
        room too: a roster change in between may have taken the capability); else ConcurrentChange."""
        operations = [self._endpoint_update(room_id, call_id, participant)]
        if room_etag is not None:
            operations.append(room_unchanged(room_id, room_etag))
        with storage_faults():
            try:
                result = self._table.submit_transaction(operations)
            except Exception as error:
                if is_precondition_failure(error) or getattr(error, "status_code", None) == 404:
                    raise ConcurrentChange(room_id) from error
                raise
        return replace(participant, etag=result[0]["etag"])

    def active_call_rooms(self) -> list[str]:
        with storage_faults():
            return [
                e["PartitionKey"]
                for e in self._table.query_entities(
                    "RowKey eq @call and State eq 'active'", parameters={"call": CALL_ROW}, select=["PartitionKey"]
                )
            ]


