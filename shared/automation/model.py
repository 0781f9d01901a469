"""Call Automation callbacks in ACS's shape (CloudEvents), derived from a room call's committed change."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from ..events.model import OutgoingEvent
from ..calls.model import Call, CallConnection, CallParticipant, ConnectionState, EndpointState, LeaveReason, identifier_json

EVENT_PREFIX = "Microsoft.Communication."
CALL_CONNECTED = "CallConnected"
CALL_DISCONNECTED = "CallDisconnected"
PARTICIPANTS_UPDATED = "ParticipantsUpdated"
ADD_SUCCEEDED = "AddParticipantSucceeded"
ADD_FAILED = "AddParticipantFailed"
CANCEL_ADD_SUCCEEDED = "CancelAddParticipantSucceeded"
REMOVE_SUCCEEDED = "RemoveParticipantSucceeded"

# Why an invitation ended -> ACS's resultInformation (code, subCode, message); codes from ACS's
# Call Automation troubleshooting table (8538 callee declined, 8539 busy, 8541 unavailable, 8542 canceled).
SUCCESS = (200, 0, "Action completed successfully.")
INVITATION_OUTCOMES = {
    LeaveReason.DECLINED: (603, 8538, "Call declined by the callee."),
    LeaveReason.BUSY: (486, 8539, "Callee is busy."),
    LeaveReason.NO_ANSWER: (408, 8541, "Callee did not answer."),
    LeaveReason.CALL_ENDED: (487, 8542, "The call ended before the participant answered."),
    LeaveReason.REMOVED_FROM_ROOM: (487, 8542, "The participant was removed from the room before answering."),
    LeaveReason.GATEWAY_FAILED: (500, 9001, "The PSTN gateway could not place the call."),
}
DISCONNECTED = (200, 7000, "The call was disconnected.")


@dataclass(frozen=True)
class Callback:
    """One event bound for one callback URI."""

    destination: str
    event: OutgoingEvent


def result_information(outcome: tuple[int, int, str]) -> dict:
    code, sub_code, message = outcome
    return {"code": code, "subCode": sub_code, "message": message}


def call_participant_json(endpoint: CallParticipant) -> dict:
    """ACS's CallParticipant model: identifier, isMuted, isOnHold."""
    return {"identifier": identifier_json(endpoint.raw_id, endpoint.kind), "isMuted": endpoint.muted, "isOnHold": False}


def visible_participants(call: Call) -> list[CallParticipant]:
    """Who Call Automation lists: the endpoints connected now (ringing invitations are not in the call)."""
    return [p for p in call.participants if p.connected]


def connection_properties(call: Call, connection: CallConnection) -> dict:
    """ACS's CallConnectionProperties for a connection to this call."""
    connected = call.active and connection.connected
    return {
        "callConnectionId": connection.call_connection_id,
        "serverCallId": call.server_call_id,
        "targets": [],  # the SDK iterates this list without a None check
        "callConnectionState": ConnectionState.CONNECTED if connected else ConnectionState.DISCONNECTED,
        "callbackUri": connection.callback_uri,
        "correlationId": call.correlation_id,
    }


def _event(call: Call, call_connection_id: str, name: str, data: dict, now: datetime) -> OutgoingEvent:
    source = f"calling/callConnections/{call_connection_id}"
    body = {"callConnectionId": call_connection_id, "serverCallId": call.server_call_id,
            "correlationId": call.correlation_id, **data}
    return OutgoingEvent(str(uuid.uuid4()), EVENT_PREFIX + name, source, body, now)


def _roster_view(call: Call | None) -> list[tuple[str, bool]]:
    return [] if call is None or not call.active else [(p.participant_id, p.muted) for p in visible_participants(call)]


def callbacks_for_change(
    before: Call | None, after: Call, changed: list[CallParticipant], now: datetime
) -> list[Callback]:
    """The callbacks one committed change produces, in the order each application should see them."""
    # Every callback goes to a connection in `after` or to a changed endpoint's automation context
    # (a connection only in `before` gets none): most changes, with neither, send nothing.
    if not after.connections and all(p.automation is None for p in changed):
        return []
    # `after` carries the endpoints as read; the changed ones replace theirs (or are new).
    updated = {p.participant_id: p for p in after.participants}
    updated.update({p.participant_id: p for p in changed})
    after = replace(after, participants=tuple(updated.values()))
    same_call = before is not None and before.server_call_id == after.server_call_id
    previous_connections = {c.call_connection_id: c for c in before.connections} if same_call else {}
    previous_endpoints = {p.participant_id: p for p in before.participants} if same_call else {}
    callbacks: list[Callback] = []

    def send(uri: str, connection_id: str, name: str, data: dict) -> None:
        callbacks.append(Callback(uri, _event(after, connection_id, name, data, now)))

    participants_updated = {
        "participants": [call_participant_json(p) for p in visible_participants(after)],
        "sequenceNumber": after.sequence,
    }
    just_connected = set()
    for connection in after.connections:
        was = previous_connections.get(connection.call_connection_id)
        if after.active and connection.connected and was is None:
            just_connected.add(connection.call_connection_id)
            context = {"operationContext": connection.operation_context}
            send(connection.callback_uri, connection.call_connection_id, CALL_CONNECTED,
                 {**context, "resultInformation": result_information(SUCCESS)})
            send(connection.callback_uri, connection.call_connection_id, PARTICIPANTS_UPDATED,
                 {**context, **participants_updated})

    for endpoint in changed:
        context = endpoint.automation
        if context is None:
            continue
        was = previous_endpoints.get(endpoint.participant_id)
        was_ringing, was_connected = was is not None and was.state == EndpointState.RINGING, was is not None and was.connected
        common = {"operationContext": context.operation_context}
        identifier = identifier_json(endpoint.raw_id, endpoint.kind)
        if was_ringing and endpoint.connected:
            send(context.callback_uri, context.call_connection_id, ADD_SUCCEEDED,
                 {**common, "participant": identifier, "resultInformation": result_information(SUCCESS)})
        elif was_ringing and endpoint.state == EndpointState.DISCONNECTED and endpoint.leave_reason == LeaveReason.CANCELLED:
            send(context.callback_uri, context.call_connection_id, CANCEL_ADD_SUCCEEDED,
                 {**common, "invitationId": endpoint.participant_id, "resultInformation": result_information(SUCCESS)})
        elif was_ringing and endpoint.state == EndpointState.DISCONNECTED:
            outcome = INVITATION_OUTCOMES.get(endpoint.leave_reason, INVITATION_OUTCOMES[LeaveReason.CALL_ENDED])
            send(context.callback_uri, context.call_connection_id, ADD_FAILED,
                 {**common, "participant": identifier, "resultInformation": result_information(outcome)})
        elif was_connected and endpoint.state == EndpointState.DISCONNECTED and endpoint.leave_reason == LeaveReason.REMOVED_BY_SERVER:
            send(context.callback_uri, context.call_connection_id, REMOVE_SUCCEEDED,
                 {**common, "participant": identifier, "resultInformation": result_information(SUCCESS)})

    roster_changed = _roster_view(before if same_call else None) != _roster_view(after)
    for connection in after.connections:
        was = previous_connections.get(connection.call_connection_id)
        was_connected = was is not None and was.connected and before.active
        if was_connected and (not after.active or not connection.connected):
            send(connection.callback_uri, connection.call_connection_id, CALL_DISCONNECTED,
                 {"operationContext": connection.operation_context, "resultInformation": result_information(DISCONNECTED)})
        elif after.active and connection.connected and roster_changed and connection.call_connection_id not in just_connected:
            send(connection.callback_uri, connection.call_connection_id, PARTICIPANTS_UPDATED,
                 {"operationContext": connection.operation_context, **participants_updated})
    return callbacks


def cloud_event(event: OutgoingEvent) -> dict:
    """A callback as ACS posts it: a CloudEvents 1.0 object (sent in a JSON array)."""
    return {
        "id": event.id, "source": event.subject, "type": event.event_type, "data": event.data,
        "time": event.event_time.isoformat(), "specversion": "1.0",
        "datacontenttype": "application/json", "subject": event.subject,
    }
