"""The app's own log schema and readers: the one place the analytics package (and its tests) import `shared` from.

Names, table suffixes and record classes of the operation log (`shared.logs.operations`) and the
room-call log (`shared.logs.attendance`). When those modules move, only the imports below change.
"""
from __future__ import annotations

from shared.logs.attendance import (
    CALLS_TABLE_SUFFIX,
    PARTICIPANTS_TABLE_SUFFIX,
    CallParticipantRecord,
    RoomCallRecord,
    TableCallLog,
    read_call_records,
    read_participant_records,
)
from shared.logs.operations import (
    DEFAULT_TABLE_PREFIX,
    DIAGNOSTIC_CATEGORY,
    LOG_ANALYTICS_TABLE,
    OPERATION_NAMES,
    OPERATIONS_TABLE_SUFFIX,
    ROOM_COLUMNS,
    RoomsOperationRecord,
    TableOperationLog,
    diagnostic_blob_path,
    format_log_time,
    read_operation_records,
)

__all__ = [
    "CALLS_TABLE_SUFFIX", "PARTICIPANTS_TABLE_SUFFIX", "CallParticipantRecord", "RoomCallRecord", "TableCallLog",
    "read_call_records", "read_participant_records", "DEFAULT_TABLE_PREFIX", "DIAGNOSTIC_CATEGORY",
    "LOG_ANALYTICS_TABLE", "OPERATION_NAMES", "OPERATIONS_TABLE_SUFFIX", "ROOM_COLUMNS", "RoomsOperationRecord",
    "TableOperationLog", "diagnostic_blob_path", "format_log_time", "read_operation_records",
]
