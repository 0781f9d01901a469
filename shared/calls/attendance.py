"""Attendance from call changes: the call and participant records (ACSCallSummary) one committed change leaves."""
from __future__ import annotations

from ..logs.attendance import CallLog, CallLogRecord, CallParticipantRecord, RoomCallRecord
from .changes import CallChange
from .model import Call, CallParticipant, EndpointKind

ENDPOINT_TYPE_OF_KIND = {EndpointKind.VOIP: "VoIP", EndpointKind.PHONE: "PSTN"}


def records_for_change(before: Call | None, after: Call, changed: list[CallParticipant]) -> list[CallLogRecord]:
    """The attendance records one committed call change leaves: call start/end, each connect and disconnect.

    Endpoints that rang and never connected leave nothing: they never attended.
    """
    same_call = before is not None and before.server_call_id == after.server_call_id
    records: list[CallLogRecord] = []
    if not same_call or before.active != after.active:
        records.append(RoomCallRecord(
            call_id=after.correlation_id, room_id=after.room_id, started_at=after.started_at,
            server_call_id=after.server_call_id, ended_at=None if after.active else after.ended_at,
            end_reason=None if after.active else after.end_reason,
        ))
    previous = {p.participant_id: p for p in before.participants} if same_call else {}
    for endpoint in changed:
        earlier = previous.get(endpoint.participant_id)
        joined_now = endpoint.connected and (earlier is None or not earlier.connected)
        left_now = endpoint.state == "disconnected" and earlier is not None and earlier.connected
        if endpoint.joined_at is None or not (joined_now or left_now):
            continue
        records.append(CallParticipantRecord(
            call_id=after.correlation_id, participant_id=endpoint.participant_id, identifier=endpoint.raw_id,
            room_id=after.room_id, joined_at=endpoint.joined_at, endpoint_type=ENDPOINT_TYPE_OF_KIND[endpoint.kind],
            role=endpoint.joined_role.value if endpoint.joined_role else None, call_started_at=after.started_at,
            left_at=endpoint.left_at if left_now else None, end_reason=endpoint.leave_reason if left_now else None,
        ))
    return records


class AttendanceRecorder:
    """CallChangeListener: once a change committed, its attendance records go to the call log
    (which writes them in the background; nothing joins the change's transaction)."""

    def __init__(self, log: CallLog) -> None:
        self._log = log

    def entities(self, change: CallChange) -> list[dict]:
        return []

    def committed(self, change: CallChange, entities: list[dict]) -> None:
        for record in records_for_change(change.before, change.after, change.changed):
            self._log.write(record)
