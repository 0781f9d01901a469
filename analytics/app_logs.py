"""The app's own log schema and readers: the one place the analytics package (and its tests) import `shared` from.

Names, table suffixes and record classes of the operation log (`shared.oplog`) and the room-call log
(`shared.calllog`). When those modules move, only the imports below change.
"""
from __future__ import annotations

from shared.calllog import (
    CALLS_TABLE_SUFFIX,
    PARTICIPANTS_TABLE_SUFFIX,
    CallParticipantRecord,
    RoomCallRecord,
    TableCallLog,
    read_call_records,
    read_participant_records,
)
from shared.oplog import (
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
