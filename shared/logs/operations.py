"""Rooms operation log in ACS's `ACSRoomsIncomingOperations` schema: record, Table-storage writer, export."""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config.settings import DEFAULT_TABLE_PREFIX
from ..storage.batches import TableSource
from .base import MemoryLog, WriterBackedLog, hour_partition, read_time_range, time_row_key
from ..core.timefmt import assume_utc, parse_rfc3339, to_utc

LOG_ANALYTICS_TABLE = "ACSRoomsIncomingOperations"
DIAGNOSTIC_CATEGORY = "RoomsOperational"
# The default table names assume the default ANTEROOM_TABLE_PREFIX (settings.DEFAULT_TABLE_PREFIX).
OPERATIONS_TABLE_SUFFIX = "RoomsOperations"
DEFAULT_TABLE_NAME = DEFAULT_TABLE_PREFIX + OPERATIONS_TABLE_SUFFIX
OPERATION_NAMES = frozenset(
    {"CreateRoom", "GetRoom", "UpdateRoom", "DeleteRoom", "ListRooms", "GetParticipants", "UpdateParticipants"}
)

# Record field -> Log Analytics column, for the optional room fields, in the table's column order.
# `collaborators` has no column (ACS logs no Collaborator count); it stays on the record only.
_ROOM_COLUMNS = (
    ("room_id", "RoomId"),
    ("room_lifespan_minutes", "RoomLifespan"),
    ("added_participants", "AddedRoomParticipantsCount"),
    ("upserted_participants", "UpsertedRoomParticipantsCount"),
    ("removed_participants", "RemovedRoomParticipantsCount"),
    ("participants_count", "RoomParticipantsCount"),
    ("presenters", "RoomParticipantsPresenter"),
    ("attendees", "RoomParticipantsAttendee"),
    ("consumers", "RoomParticipantsConsumer"),
    ("pstn_dial_out_enabled", "PstnDialOutEnabled"),
)
ROOM_COLUMNS = tuple(column for _, column in _ROOM_COLUMNS)


CORRELATION_ID_PATTERN = "[A-Za-z0-9+/]{22}"  # what new_correlation_id makes


def new_correlation_id() -> str:
    """A fresh 22-character base64 id derived from a random GUID, shaped like ACS's CorrelationId."""
    return base64.b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def format_log_time(moment: datetime) -> str:
    """UTC with 7 fractional digits and `Z`, as Azure Monitor writes `time` (e.g. `...T09:15:02.1234560Z`)."""
    return to_utc(moment).replace(tzinfo=None).isoformat(timespec="microseconds") + "0Z"


def normalize_resource_id(resource_id: str) -> str:
    """The ARM resource id as Azure Monitor exports it: upper case with one leading slash.

    Raises ValueError for an empty id.
    """
    stripped = resource_id.strip().strip("/")
    if not stripped:
        raise ValueError("resource_id must not be empty")
    return "/" + stripped.upper()


@dataclass(frozen=True, kw_only=True)
class RoomsOperationRecord:
    """One incoming Rooms API request, as ACS logs it to `ACSRoomsIncomingOperations`.

    Keyword-only. `time_generated` must be timezone-aware (it is stored in UTC); `operation_name`
    must be one of OPERATION_NAMES; `result_signature` is the HTTP status (100..599). Any of these
    wrong raises ValueError. Room fields that do not apply to the operation stay None and are left
    out of every output, as ACS leaves them out.
    """

    time_generated: datetime
    correlation_id: str
    operation_name: str
    operation_version: str | None
    result_signature: int
    duration_ms: float
    caller_ip_address: str | None = None
    room_id: str | None = None
    room_lifespan_minutes: int | None = None
    added_participants: int | None = None
    upserted_participants: int | None = None
    removed_participants: int | None = None
    participants_count: int | None = None
    presenters: int | None = None
    attendees: int | None = None
    consumers: int | None = None
    collaborators: int | None = None
    pstn_dial_out_enabled: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_generated", to_utc(self.time_generated, "time_generated"))
        if self.operation_name not in OPERATION_NAMES:
            raise ValueError(f"unknown operation_name {self.operation_name!r}; expected one of {sorted(OPERATION_NAMES)}")
        if isinstance(self.result_signature, bool) or not isinstance(self.result_signature, int):
            raise ValueError("result_signature must be the int HTTP status")
        if not 100 <= self.result_signature <= 599:
            raise ValueError(f"result_signature {self.result_signature} is not an HTTP status")
        if not self.correlation_id:
            raise ValueError("correlation_id must not be empty")

    @property
    def result_type(self) -> str:
        """`Succeeded` below HTTP 400, else `Failed`."""
        return "Succeeded" if self.result_signature < 400 else "Failed"

    @property
    def level(self) -> str:
        """`Informational` for success, `Warning` for 4xx, `Error` for 5xx.

        ACS's published samples are all successes at `Informational`; the failure levels follow the
        Azure Monitor common schema's `Warning`/`Error` values.
        """
        if self.result_signature >= 500:
            return "Error"
        if self.result_signature >= 400:
            return "Warning"
        return "Informational"

    def _room_properties(self) -> dict[str, Any]:
        return {
            column: getattr(self, field)
            for field, column in _ROOM_COLUMNS
            if getattr(self, field) is not None
        }

    def to_log_analytics(self) -> dict[str, Any]:
        """The record as `ACSRoomsIncomingOperations` columns; TimeGenerated stays a UTC datetime."""
        columns: dict[str, Any] = {
            "TimeGenerated": self.time_generated,
            "CorrelationId": self.correlation_id,
            "Level": self.level,
            "OperationName": self.operation_name,
        }
        if self.operation_version is not None:
            columns["OperationVersion"] = self.operation_version
        columns["ResultType"] = self.result_type
        columns["ResultSignature"] = str(self.result_signature)
        columns.update(self._room_properties())
        columns["DurationMs"] = float(self.duration_ms)
        if self.caller_ip_address is not None:
            columns["CallerIpAddress"] = self.caller_ip_address
        columns["Type"] = LOG_ANALYTICS_TABLE
        return columns

    def to_diagnostic_record(self, resource_id: str) -> dict[str, Any]:
        """The raw record a `RoomsOperational` diagnostic setting writes to storage or an event hub.

        Raises ValueError for an empty resource_id.
        """
        record: dict[str, Any] = {
            "time": format_log_time(self.time_generated),
            "resourceId": normalize_resource_id(resource_id),
            "category": DIAGNOSTIC_CATEGORY,
            "operationName": self.operation_name,
        }
        if self.operation_version is not None:
            record["operationVersion"] = self.operation_version
        record.update(
            {
                "resultType": self.result_type,
                "resultSignature": str(self.result_signature),
                "correlationId": self.correlation_id,
                "level": self.level,
                "durationMs": float(self.duration_ms),
            }
        )
        if self.caller_ip_address is not None:
            record["callerIpAddress"] = self.caller_ip_address
        record["properties"] = self._room_properties()
        return record

    def to_entity(self) -> dict[str, Any]:
        """The Table-storage entity: the Log Analytics columns plus hour PartitionKey and time RowKey."""
        entity = self.to_log_analytics()
        entity["PartitionKey"] = hour_partition(self.time_generated)
        entity["RowKey"] = time_row_key(self.time_generated, self.correlation_id)
        return entity

    @classmethod
    def from_log_analytics(cls, columns: Mapping[str, Any]) -> "RoomsOperationRecord":
        """Rebuild a record from Log Analytics columns (as `to_log_analytics` or the table gives them).

        `collaborators` cannot be recovered (no column). Raises ValueError or KeyError for columns
        that do not make a valid record.
        """
        time_generated = columns["TimeGenerated"]
        if isinstance(time_generated, str):
            time_generated = parse_rfc3339(time_generated)
        room = {field: columns.get(column) for field, column in _ROOM_COLUMNS}
        duration = columns.get("DurationMs")
        return cls(
            time_generated=time_generated,
            correlation_id=columns["CorrelationId"],
            operation_name=columns["OperationName"],
            operation_version=columns.get("OperationVersion"),
            result_signature=int(columns["ResultSignature"]),
            duration_ms=float(duration) if duration is not None else 0.0,
            caller_ip_address=columns.get("CallerIpAddress"),
            **room,
        )


class MemoryOperationLog(MemoryLog):
    """In-memory twin of TableOperationLog."""


class TableOperationLog(WriterBackedLog):
    """Writes RoomsOperationRecords to Azure Table storage without slowing or breaking a request.

    `source` is a connection string, a TableServiceClient, or a callable returning a TableClient for
    a table name. `write()` only enqueues (see BackgroundTableWriter for batching, retries and
    drops); `written` and `dropped` count entities. Nothing connects until the first write.
    """

    def __init__(
        self,
        source: TableSource,
        table_name: str = DEFAULT_TABLE_NAME,
        **writer_options: Any,
    ) -> None:
        super().__init__(source, **writer_options)
        self.table_name = table_name

    def write(self, record: RoomsOperationRecord) -> None:
        """Queue one record; never blocks on storage and never raises."""
        self._writer.write(self.table_name, record.to_entity())


def read_operation_records(
    table_client: Any, since: datetime | None = None, until: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the stored records as Log Analytics column dicts, `since` <= TimeGenerated < `until`.

    The bounds must be timezone-aware (ValueError otherwise). Storage errors propagate.
    """
    return read_time_range(table_client, "TimeGenerated", since, until)


def diagnostic_blob_path(resource_id: str, moment: datetime, category: str = DIAGNOSTIC_CATEGORY) -> Path:
    """Relative path of the hourly PT1H.json blob a diagnostic setting writes `moment` into."""
    moment = to_utc(moment)
    return Path(
        f"insights-logs-{category.lower()}",
        f"resourceId={normalize_resource_id(resource_id)}",
        f"y={moment:%Y}", f"m={moment:%m}", f"d={moment:%d}", f"h={moment:%H}", "m=00", "PT1H.json",
    )


def export_diagnostic_settings(
    records: Iterable[RoomsOperationRecord | Mapping[str, Any]], out_dir: str | os.PathLike, resource_id: str
) -> list[Path]:
    """Write records in the storage-account layout of a `RoomsOperational` diagnostic setting.

    Each record goes, as one JSON line, to the PT1H.json of its hour under `out_dir` (appending to
    files already there). Accepts records or Log Analytics column dicts. Returns the files written,
    sorted. Raises ValueError for an empty resource_id and OSError when a file cannot be written.
    """
    root = Path(out_dir)
    written: set[Path] = set()
    current_path: Path | None = None
    handle = None
    try:
        for item in records:
            record = item if isinstance(item, RoomsOperationRecord) else RoomsOperationRecord.from_log_analytics(item)
            path = root / diagnostic_blob_path(resource_id, record.time_generated)
            if path != current_path:
                if handle is not None:
                    handle.close()
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = path.open("a", encoding="utf-8")
                current_path = path
                written.add(path)
            handle.write(json.dumps(record.to_diagnostic_record(resource_id), separators=(",", ":")) + "\n")
    finally:
        if handle is not None:
            handle.close()
    return sorted(written)


def _parse_bound(text: str | None) -> datetime | None:
    if text is None:
        return None
    return assume_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m shared.logs.operations export ...`: copy the stored operation log into the diagnostic layout."""
    parser = argparse.ArgumentParser(prog="python -m shared.logs.operations", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the stored log as diagnostic-settings PT1H.json files")
    export.add_argument("--connection-string", default=os.environ.get("ANTEROOM_STORAGE_CONNECTION_STRING"),
                        help="storage connection string (default: $ANTEROOM_STORAGE_CONNECTION_STRING)")
    export.add_argument("--table", default=DEFAULT_TABLE_NAME,
                        help=f"table name: ANTEROOM_TABLE_PREFIX + {OPERATIONS_TABLE_SUFFIX} (default {DEFAULT_TABLE_NAME})")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--resource-id", required=True, help="ARM id of the Communication Services resource")
    export.add_argument("--since", help="ISO time; only records at or after it (UTC if no offset)")
    export.add_argument("--until", help="ISO time; only records before it (UTC if no offset)")
    args = parser.parse_args(argv)
    if not args.connection_string:
        parser.error("--connection-string is required (or set ANTEROOM_STORAGE_CONNECTION_STRING)")
    from azure.data.tables import TableClient

    with TableClient.from_connection_string(args.connection_string, args.table) as table:
        rows = read_operation_records(table, _parse_bound(args.since), _parse_bound(args.until))
        files = export_diagnostic_settings(rows, args.out, args.resource_id)
    for path in files:
        print(path)
    print(f"{len(files)} file(s) written under {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
