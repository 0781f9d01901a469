"""Attendance records derived from call-state changes: call start and end, connects and disconnects."""
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from shared.calls.attendance import records_for_change
from shared.logs.attendance import CallParticipantRecord, RoomCallRecord
from shared.calls.model import Call, CallParticipant, EndpointKind
from shared.rooms.model import Role

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
ALICE, BOB, PHONE = "8:acs:r_alice", "8:acs:r_bob", "4:+14255550123"


def started_call():
    alice = CallParticipant("p1", ALICE, EndpointKind.VOIP, "connected", T0, joined_role=Role.PRESENTER)
    return Call("99000000000000001", "c2VydmVy", "active", T0, ALICE, 1, 1, "corr", participants=(alice,)), alice


def test_first_join_records_the_call_and_the_open_connection():
    call, alice = started_call()
    started, joined = records_for_change(None, call, [alice])
    assert started == RoomCallRecord(call_id="corr", room_id="99000000000000001", started_at=T0, server_call_id="c2VydmVy")
    assert isinstance(joined, CallParticipantRecord)
    assert (joined.participant_id, joined.identifier, joined.role, joined.endpoint_type, joined.left_at) == (
        "p1", ALICE, "Presenter", "VoIP", None)


def test_a_phone_joining_an_active_call_records_only_its_connection_without_a_role():
    call, _ = started_call()
    phone = CallParticipant("p9", PHONE, EndpointKind.PHONE, "connected", T0 + timedelta(seconds=5))
    after = replace(call, connected=2, sequence=2, participants=call.participants + (phone,))
    [record] = records_for_change(call, after, [phone])
    assert (record.endpoint_type, record.role, record.call_started_at) == ("PSTN", None, T0)


def test_mute_and_ringing_invitations_leave_no_records():
    call, alice = started_call()
    muted = replace(alice, muted=True)
    assert records_for_change(call, replace(call, sequence=2, participants=(muted,)), [muted]) == []
    ringing = CallParticipant("p2", BOB, EndpointKind.VOIP, "ringing", None)
    gave_up = replace(ringing, state="disconnected", left_at=T0, leave_reason="callEnded")
    assert records_for_change(call, call, [ringing]) == []
    assert records_for_change(call, call, [gave_up]) == []


def test_last_leave_closes_the_connection_and_the_call():
    call, alice = started_call()
    later = T0 + timedelta(minutes=3)
    gone = replace(alice, state="disconnected", left_at=later, leave_reason="hungUp")
    after = replace(call, state="ended", connected=0, ended_at=later, end_reason="lastParticipantLeft", participants=(gone,))
    ended, left = records_for_change(call, after, [gone])
    assert (ended.ended_at, ended.end_reason, ended.duration_seconds) == (later, "lastParticipantLeft", 180.0)
    assert (left.joined_at, left.left_at, left.end_reason) == (T0, later, "hungUp")
