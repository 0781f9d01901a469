"""Call lifecycle events in ACS's Event Grid shape, derived from a call's state change.

Like ACS, calling events cover VoIP users only: phone endpoints start, join and leave calls
without a CallParticipantAdded/Removed of their own (a call still ends with CallEnded).
"""
from __future__ import annotations

import uuid
from datetime import datetime

from ..core.clock import Clock
from ..events.dispatcher import Dispatcher
from ..events.model import CALL_ENDED, CALL_STARTED, PARTICIPANT_ADDED, PARTICIPANT_REMOVED, OutgoingEvent
from ..events.outbox import outbox_entities
from .changes import CallChange
from .model import Call, CallParticipant, EndReason, EndpointKind, EndpointState, LeaveReason, identifier_json

NO_GROUP = "00000000-0000-0000-0000-000000000000"  # room calls carry an all-zero group id
USER_AGENT = "anteroom-room-calls/1.0"

# Why a call ended or a participant left -> ACS's reason triple (code, subCode, phrase). Keyed by both
# enums: an EndReason equals the LeaveReason of the same name, as the endpoints of an ended call carry it.
REASONS = {
    EndReason.LAST_PARTICIPANT_LEFT: (0, 0, "Call ended because the last participant left."),
    LeaveReason.HUNG_UP: (0, 0, "The participant left the call."),
    LeaveReason.PHONE_HUNG_UP: (0, 0, "The phone participant hung up."),
    LeaveReason.REMOVED_BY_PARTICIPANT: (0, 5300, "The participant was removed from the call by another participant."),
    LeaveReason.REMOVED_BY_SERVER: (0, 5300, "The participant was removed from the call by the server."),
    LeaveReason.REMOVED_FROM_ROOM: (0, 5301, "The participant was removed from the room's roster."),
    LeaveReason.ROOM_EXPIRED: (0, 5302, "The call ended because the room's validity ended."),
    LeaveReason.ROOM_DELETED: (0, 5303, "The call ended because the room was deleted."),
    LeaveReason.HUNG_UP_FOR_EVERYONE: (0, 5000, "The call was ended for everyone."),
    LeaveReason.CALL_ENDED: (0, 0, "The call ended."),
}


def _participant(raw_id: str, role) -> dict:
    return {
        "communicationIdentifier": identifier_json(raw_id, EndpointKind.VOIP),
        "role": role.value if role else None,
    }


def _reason(code: str | None) -> dict:
    number, sub, phrase = REASONS.get(code or LeaveReason.CALL_ENDED, REASONS[LeaveReason.CALL_ENDED])
    return {"code": number, "subCode": sub, "phrase": phrase}


def _common(call: Call, starter: CallParticipant | None) -> dict:
    return {
        "startedBy": _participant(call.started_by, starter.joined_role if starter else None),
        "serverCallId": call.server_call_id,
        "correlationId": call.correlation_id,
        "group": {"id": NO_GROUP},
        "room": {"id": call.room_id},
        "isTwoParty": False,
        "isRoomsCall": True,
    }


def events_for_change(
    before: Call | None, after: Call, changed: list[CallParticipant], now: datetime
) -> list[OutgoingEvent]:
    """The events one committed change produces, in the order subscribers should see them."""
    known = {p.participant_id: p for p in after.participants}
    known.update({p.participant_id: p for p in changed})
    starter = next((p for p in known.values() if p.raw_id == after.started_by), None)
    common = _common(after, starter)
    sid = after.server_call_id
    events: list[OutgoingEvent] = []

    def emit(event_type: str, subject: str, extra: dict) -> None:
        events.append(OutgoingEvent(str(uuid.uuid4()), event_type, subject, {**common, **extra}, now))

    new_call = after.active and (before is None or not before.active or before.server_call_id != sid)
    if new_call:
        emit(CALL_STARTED, f"call/{sid}/startedBy/{after.started_by}", {})
    previous = {} if new_call or before is None else {p.participant_id: p for p in before.participants}
    for endpoint in changed:
        if endpoint.kind is not EndpointKind.VOIP:
            continue
        was_connected = previous.get(endpoint.participant_id) is not None and previous[endpoint.participant_id].connected
        body = {
            "user": _participant(endpoint.raw_id, endpoint.joined_role),
            "participantId": endpoint.participant_id,
            "userAgent": USER_AGENT,
            "endpointType": USER_AGENT,  # ACS's docs name the field endpointType, its SDK models userAgent
        }
        if endpoint.display_name is not None:  # as ACS, only the name the client joined with
            body["displayName"] = endpoint.display_name
        if endpoint.connected and not was_connected:
            emit(PARTICIPANT_ADDED, f"call/{sid}/participant/{endpoint.raw_id}", body)
        elif endpoint.state == EndpointState.DISCONNECTED and was_connected:
            emit(PARTICIPANT_REMOVED, f"call/{sid}/participant/{endpoint.raw_id}", {**body, "reason": _reason(endpoint.leave_reason)})
    if before is not None and before.active and before.server_call_id == sid and not after.active:
        duration = ((after.ended_at or now) - after.started_at).total_seconds()
        # The last one out ended it as a participant; expiry, deletion and termination end it from inside.
        leaver = None
        if after.end_reason == EndReason.LAST_PARTICIPANT_LEFT:
            leaver = next((p for p in changed if p.participant_id in previous and previous[p.participant_id].connected), None)
        if leaver is not None:
            ended_by = {"communicationIdentifier": identifier_json(leaver.raw_id, leaver.kind), "type": "Participant",
                        "name": leaver.display_name or leaver.raw_id}
        else:
            ended_by = {"communicationIdentifier": {"kind": "unknown", "rawId": "anteroom"}, "type": "MicrosoftInternal", "name": after.end_reason or "callEnded"}
        emit(CALL_ENDED, f"call/{sid}", {
            "callDurationInSeconds": duration,
            "durationOfCall": duration,  # the docs' name for the same value
            "endedBy": ended_by,
            "reason": _reason(after.end_reason),
        })
    return events


class CallEventsPublisher:
    """CallChangeListener: a change's call events go to the room's outbox in the change's own
    transaction, and the dispatcher publishes them to Event Grid once it committed."""

    def __init__(self, dispatcher: Dispatcher, clock: Clock) -> None:
        self._dispatcher = dispatcher
        self._clock = clock

    def entities(self, change: CallChange) -> list[dict]:
        events = events_for_change(change.before, change.after, change.changed, self._clock())
        return outbox_entities(change.room_id, change.after.sequence, change.after.server_call_id, events)

    def committed(self, change: CallChange, entities: list[dict]) -> None:
        if entities:
            self._dispatcher.notify(change.room_id)
