"""Call events derived from call-state changes, in ACS's shape, decoded with azure-eventgrid's own models."""
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent

from shared.calls.events import events_for_change
from shared.events.model import envelope
from shared.calls.model import Call, CallParticipant, EndpointKind
from shared.rooms.model import Role

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
RESOURCE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Communication/communicationServices/anteroom"
ALICE, BOB = "8:acs:r_alice", "8:acs:r_bob"


def participant(pid, raw_id, role=Role.PRESENTER, kind=EndpointKind.VOIP):
    return CallParticipant(pid, raw_id, kind, "connected", T0, joined_role=role)


def started_call():
    alice = participant("p1", ALICE)
    call = Call("99000000000000001", "c2VydmVy", "active", T0, ALICE, 1, 1, "corr", participants=(alice,))
    return call, alice


def test_first_join_starts_the_call_then_adds_the_participant():
    call, alice = started_call()
    events = events_for_change(None, call, [alice], T0)
    assert [e.event_type.rsplit(".", 1)[1] for e in events] == ["CallStarted", "CallParticipantAdded"]
    started, added = events
    assert started.subject == f"call/c2VydmVy/startedBy/{ALICE}"
    assert added.subject == f"call/c2VydmVy/participant/{ALICE}"
    assert started.data["room"] == {"id": "99000000000000001"} and started.data["isRoomsCall"] is True
    assert started.data["startedBy"] == {
        "communicationIdentifier": {"kind": "communicationUser", "rawId": ALICE, "communicationUser": {"id": ALICE}},
        "role": "Presenter",
    }
    assert added.data["participantId"] == "p1" and added.data["userAgent"] == added.data["endpointType"]
    assert len({e.id for e in events}) == 2


def test_phone_endpoints_produce_no_participant_events():
    call, _ = started_call()
    phone = participant("p9", "4:+14255550123", None, EndpointKind.PHONE)
    after = replace(call, connected=2, sequence=2, participants=call.participants + (phone,))
    assert events_for_change(call, after, [phone], T0) == []


def test_last_leave_removes_then_ends_with_both_duration_spellings():
    call, alice = started_call()
    later = T0 + timedelta(seconds=49.5)
    gone = replace(alice, state="disconnected", left_at=later, leave_reason="hungUp")
    after = replace(call, state="ended", connected=0, ended_at=later, end_reason="lastParticipantLeft", participants=(gone,))
    removed, ended = events_for_change(call, after, [gone], later)
    assert removed.event_type.endswith("CallParticipantRemoved") and removed.data["reason"]["code"] == 0
    assert ended.subject == "call/c2VydmVy"
    assert ended.data["callDurationInSeconds"] == ended.data["durationOfCall"] == 49.5
    assert ended.data["endedBy"]["type"] == "Participant" and ended.data["endedBy"]["communicationIdentifier"]["rawId"] == ALICE


def test_expiry_ends_the_call_from_inside():
    call, alice = started_call()
    gone = replace(alice, state="disconnected", leave_reason="roomExpired")
    after = replace(call, state="ended", connected=0, ended_at=T0, end_reason="roomExpired")
    ended = events_for_change(call, after, [gone], T0)[-1]
    assert ended.data["endedBy"]["type"] == "MicrosoftInternal" and ended.data["endedBy"]["name"] == "roomExpired"


def test_envelopes_decode_with_the_sdk_models():
    call, alice = started_call()
    event = events_for_change(None, call, [alice], T0)[0]
    grid = EventGridEvent.from_json(json.dumps(envelope(event, "EventGridSchema", RESOURCE)))
    assert (grid.id, grid.event_type, grid.subject, grid.data_version) == (event.id, event.event_type, event.subject, "1.0")
    assert grid.topic == RESOURCE.lower() and grid.data["serverCallId"] == "c2VydmVy"
    cloud = CloudEvent.from_dict(envelope(event, "CloudEventSchemaV1_0", RESOURCE))
    assert (cloud.id, cloud.type, cloud.source, cloud.subject) == (event.id, event.event_type, RESOURCE, event.subject)
    assert cloud.data["startedBy"]["role"] == "Presenter"
