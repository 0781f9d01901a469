"""Room-call attendance log modelled on ACS's `ACSCallSummary`: call and participant records, Table writer."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..config.settings import DEFAULT_TABLE_PREFIX
from ..core.timefmt import to_utc
from ..storage.batches import TableSource
from .base import MemoryLog, WriterBackedLog, hour_partition, read_time_range, time_row_key

CALLS_TABLE_SUFFIX = "RoomCalls"
PARTICIPANTS_TABLE_SUFFIX = "RoomCallParticipants"
DEFAULT_CALLS_TABLE = DEFAULT_TABLE_PREFIX + CALLS_TABLE_SUFFIX
DEFAULT_PARTICIPANTS_TABLE = DEFAULT_TABLE_PREFIX + PARTICIPANTS_TABLE_SUFFIX
ENDPOINT_TYPES = frozenset({"VoIP", "PSTN", "Server", "Bot", "Unknown"})
ROLES = frozenset({"Presenter", "Attendee", "Consumer", "Collaborator", "Organizer"})


def _check_interval(record: Any, start_field: str, end_field: str) -> None:
    for field in (start_field, end_field):
        object.__setattr__(record, field, to_utc(getattr(record, field), field))
    start, end = getattr(record, start_field), getattr(record, end_field)
    if start is None:
        raise ValueError(f"{start_field} is required")
    if end is not None and end < start:
        raise ValueError(f"{end_field} is before {start_field}")


def _without_none(columns: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in columns.items() if value is not None}


@dataclass(frozen=True, kw_only=True)
class RoomCallRecord:
    """One room call. Write it when the call starts and again, with `ended_at`, when it ends.

    `call_id` is the call's correlation id (ACSCallSummary `CorrelationId`, Event Grid
    `data.correlationId`); `server_call_id` the Event Grid `serverCallId`. Times must be
    timezone-aware and `ended_at` not before `started_at` (ValueError otherwise).
    """

    call_id: str
    room_id: str | None
    started_at: datetime
    server_call_id: str | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None

    def __post_init__(self) -> None:
        if not self.call_id:
            raise ValueError("call_id must not be empty")
        _check_interval(self, "started_at", "ended_at")

    @property
    def duration_seconds(self) -> float | None:
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()

    def to_columns(self) -> dict[str, Any]:
        """ACSCallSummary-style call columns; values not known yet are left out."""
        return _without_none(
            {
                "CorrelationId": self.call_id,
                "ServerCallId": self.server_call_id,
                "RoomId": self.room_id,
                "CallStartTime": self.started_at,
                "CallEndTime": self.ended_at,
                "CallDuration": self.duration_seconds,
                "CallEndReason": self.end_reason,
            }
        )

    def to_entity(self) -> dict[str, Any]:
        """Table entity keyed by the start hour and start time, so the end-of-call write merges into it."""
        entity = self.to_columns()
        entity["PartitionKey"] = hour_partition(self.started_at)
        entity["RowKey"] = time_row_key(self.started_at, self.call_id)
        return entity


@dataclass(frozen=True, kw_only=True)
class CallParticipantRecord:
    """One participant connection to a room call (a rejoin is a new `participant_id`), as in ACSCallSummary.

    `identifier` is the raw id (`8:acs:...`) or, for PSTN, the phone raw id (`4:+1...`); `role` is
    None for PSTN participants, who have no room role. `endpoint_type` is one of ENDPOINT_TYPES.
    Write it on join and again, with `left_at`, on leave. Raises ValueError for naive times, a leave
    before the join, or an unknown endpoint type or role.
    """

    call_id: str
    participant_id: str
    identifier: str | None
    room_id: str | None
    joined_at: datetime
    endpoint_type: str = "VoIP"
    role: str | None = None
    call_started_at: datetime | None = None
    left_at: datetime | None = None
    end_reason: str | None = None

    def __post_init__(self) -> None:
        if not self.call_id or not self.participant_id:
            raise ValueError("call_id and participant_id must not be empty")
        if self.endpoint_type not in ENDPOINT_TYPES:
            raise ValueError(f"endpoint_type {self.endpoint_type!r} is not one of {sorted(ENDPOINT_TYPES)}")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"role {self.role!r} is not one of {sorted(ROLES)}")
        object.__setattr__(self, "call_started_at", to_utc(self.call_started_at, "call_started_at"))
        _check_interval(self, "joined_at", "left_at")

    @property
    def duration_seconds(self) -> float | None:
        return None if self.left_at is None else (self.left_at - self.joined_at).total_seconds()

    def to_columns(self) -> dict[str, Any]:
        """ACSCallSummary columns (plus RoomId, Role and ParticipantEndTime); unknown values left out."""
        return _without_none(
            {
                "TimeGenerated": self.left_at or self.joined_at,
                "CorrelationId": self.call_id,
                "RoomId": self.room_id,
                "CallStartTime": self.call_started_at,
                "CallType": "Group",
                "ParticipantId": self.participant_id,
                "Identifier": self.identifier,
                "Role": self.role,
                "EndpointType": self.endpoint_type,
                "ParticipantStartTime": self.joined_at,
                "ParticipantEndTime": self.left_at,
                "ParticipantDuration": self.duration_seconds,
                "ParticipantEndReason": self.end_reason,
            }
        )

    def to_entity(self) -> dict[str, Any]:
        entity = self.to_columns()
        entity["PartitionKey"] = hour_partition(self.joined_at)
        entity["RowKey"] = time_row_key(self.joined_at, self.participant_id)
        return entity


CallLogRecord = RoomCallRecord | CallParticipantRecord


class MemoryCallLog(MemoryLog):
    """In-memory twin of TableCallLog."""


class CallLog(Protocol):
    """Where attendance records go: TableCallLog in the app, MemoryCallLog in unit tests."""

    def write(self, record: CallLogRecord) -> None: ...


class TableCallLog(WriterBackedLog):
    """Writes call and participant records to two Table-storage tables, batched in the background.

    Same contract as TableOperationLog (never blocks or raises in `write`); entities are merged, so
    the end-of-call write completes the start-of-call one.
    """

    _merge = True

    def __init__(
        self,
        source: TableSource,
        calls_table: str = DEFAULT_CALLS_TABLE,
        participants_table: str = DEFAULT_PARTICIPANTS_TABLE,
        **writer_options: Any,
    ) -> None:
        super().__init__(source, **writer_options)
        self.calls_table = calls_table
        self.participants_table = participants_table

    def write(self, record: CallLogRecord) -> None:
        """Queue one call or participant record; never blocks on storage and never raises."""
        table = self.calls_table if isinstance(record, RoomCallRecord) else self.participants_table
        self._writer.write(table, record.to_entity())


def read_call_records(
    table_client: Any, since: datetime | None = None, until: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Yield stored call records as column dicts, `since` <= CallStartTime < `until` (aware bounds)."""
    return read_time_range(table_client, "CallStartTime", since, until)


def read_participant_records(
    table_client: Any, since: datetime | None = None, until: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Yield stored participant records as column dicts, `since` <= ParticipantStartTime < `until`."""
    return read_time_range(table_client, "ParticipantStartTime", since, until)
