"""Call Automation callbacks derived from call changes, decoded with the Call Automation SDK's own event models."""
from dataclasses import replace
from datetime import datetime, timezone

from azure.communication.callautomation._generated import models as sdk_events
from azure.core.messaging import CloudEvent

from shared.automation.model import callbacks_for_change, cloud_event
from shared.calls.model import AutomationContext, Call, CallConnection, CallParticipant, EndpointKind, LeaveReason

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
ALICE, PHONE = "8:acs:r_alice", "4:+14255550123"
APP, OTHER_APP = "https://app.example/cb", "https://other.example/cb"
ON_APP = AutomationContext("conn-1", APP, "ctx")


def call_with(*participants: CallParticipant, connections=()) -> Call:
    return Call("99000000000000001", "c2VydmVy", "active", T0, ALICE, 1, 5, "corr",
                participants=participants, connections=tuple(connections))


ALICE_IN = CallParticipant("p1", ALICE, EndpointKind.VOIP, "connected", T0)
CONNECTION = CallConnection("conn-1", APP, T0, "connect")


def decoded(callbacks):
    """(destination, type suffix, SDK model) of each callback, after a CloudEvents round trip."""
    result = []
    for callback in callbacks:
        event = CloudEvent.from_dict(cloud_event(callback.event))
        name = event.type.removeprefix("Microsoft.Communication.")
        result.append((callback.destination, name, getattr(sdk_events, name).deserialize(event.data)))
    return result


def test_connect_sends_call_connected_then_the_participants():
    before = call_with(ALICE_IN)
    after = replace(before, sequence=6, connections=(CONNECTION,))
    (uri, first, connected), (_, second, updated) = decoded(callbacks_for_change(before, after, [], T0))
    assert (uri, first, second) == (APP, "CallConnected", "ParticipantsUpdated")
    assert connected.call_connection_id == "conn-1" and connected.server_call_id == "c2VydmVy"
    assert connected.correlation_id == "corr" and connected.operation_context == "connect"
    assert connected.result_information.code == 200
    assert [p.identifier.raw_id for p in updated.participants] == [ALICE] and updated.sequence_number == 6


def test_answered_phone_succeeds_and_updates_every_connection():
    second = CallConnection("conn-2", OTHER_APP, T0)
    ringing = CallParticipant("inv", PHONE, EndpointKind.PHONE, "ringing", None, automation=ON_APP)
    before = call_with(ALICE_IN, ringing, connections=(CONNECTION, second))
    joined = replace(ringing, state="connected", joined_at=T0)
    result = decoded(callbacks_for_change(before, replace(before, sequence=6), [joined], T0))
    assert [(uri, name) for uri, name, _ in result] == [
        (APP, "AddParticipantSucceeded"), (APP, "ParticipantsUpdated"), (OTHER_APP, "ParticipantsUpdated"),
    ]
    succeeded = result[0][2]
    assert succeeded.participant.raw_id == PHONE and succeeded.operation_context == "ctx"
    assert {p.identifier.raw_id for p in result[1][2].participants} == {ALICE, PHONE}


def test_unanswered_and_cancelled_invitations():
    ringing = CallParticipant("inv", PHONE, EndpointKind.PHONE, "ringing", None, automation=ON_APP)
    before = call_with(ALICE_IN, ringing, connections=(CONNECTION,))
    for reason, code, sub_code in (("declined", 603, 8538), ("busy", 486, 8539), ("noAnswer", 408, 8541)):
        ended = replace(ringing, state="disconnected", left_at=T0, leave_reason=reason)
        [(_, name, failed)] = decoded(callbacks_for_change(before, before, [ended], T0))
        assert name == "AddParticipantFailed" and failed.participant.raw_id == PHONE
        assert (failed.result_information.code, failed.result_information.sub_code) == (code, sub_code)
    cancelled = replace(ringing, state="disconnected", left_at=T0, leave_reason=LeaveReason.CANCELLED)
    [(_, name, data)] = decoded(callbacks_for_change(before, before, [cancelled], T0))
    assert name == "CancelAddParticipantSucceeded" and data.invitation_id == "inv"


def test_removal_by_the_server_and_the_end_of_the_call():
    before = call_with(ALICE_IN, connections=(CONNECTION,))
    removed = replace(ALICE_IN, state="disconnected", left_at=T0, leave_reason=LeaveReason.REMOVED_BY_SERVER, automation=ON_APP)
    after = replace(before, state="ended", connected=0, ended_at=T0, sequence=6)
    names = [name for _, name, _ in decoded(callbacks_for_change(before, after, [removed], T0))]
    assert names == ["RemoveParticipantSucceeded", "CallDisconnected"]  # no update once the call is over


def test_changes_without_a_connection_send_nothing():
    before = call_with(ALICE_IN)
    muted = replace(ALICE_IN, muted=True)
    assert callbacks_for_change(before, replace(before, sequence=6), [muted], T0) == []
    hung_up = replace(CONNECTION, state="disconnected")
    connected = call_with(ALICE_IN, connections=(CONNECTION,))
    [(_, name, _)] = decoded(callbacks_for_change(connected, replace(connected, connections=(hung_up,)), [], T0))
    assert name == "CallDisconnected"


def test_connections_on_the_call_stay_bounded():
    from unittest.mock import MagicMock

    from shared.automation.service import KEPT_DISCONNECTED, MAX_CONNECTIONS_PER_CALL, CallAutomationService
    from shared.rooms.model import Room

    hung_up = [CallConnection(f"old-{i}", APP, T0, state="disconnected") for i in range(KEPT_DISCONNECTED + 5)]
    live = [CallConnection(f"live-{i}", APP, T0) for i in range(MAX_CONNECTIONS_PER_CALL - 1)]
    call = call_with(ALICE_IN, connections=hung_up + live)
    rooms, calls = MagicMock(), MagicMock()
    rooms.find.return_value.room = Room("99000000000000001", T0, T0, datetime(2099, 1, 1, tzinfo=timezone.utc), True)
    committed = {}
    calls.change.side_effect = lambda room_id, mutate: committed.setdefault("call", mutate(call))
    service = CallAutomationService(rooms, calls, MagicMock(), lambda: T0)
    service.properties = lambda connection_id: None
    service.connect("99000000000000001", APP, None, "new")
    kept = [c.call_connection_id for c in committed["call"][0].connections]
    assert kept == [c.call_connection_id for c in hung_up[-KEPT_DISCONNECTED:] + live] + ["new"]
