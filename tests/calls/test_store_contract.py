"""The CallsStore contract, on the in-memory twin and on TableCallsStore on Azurite: ETags on the call and its endpoints, the join's room guard, outbox rows in the same transaction."""
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.calls.memory import MemoryCallsStore
from shared.calls.model import AutomationContext, Call, CallParticipant, EndpointKind
from shared.calls.store import TableCallsStore
from shared.core.clock import ManualClock
from shared.events.memory import MemoryOutbox
from shared.events.model import OutgoingEvent
from shared.events.outbox import TableOutbox, outbox_entities
from shared.rooms.memory import MemoryRoomsStore
from shared.rooms.model import Role, Room
from shared.rooms.store import TableRoomsStore
from shared.storage.transactions import ConcurrentChange

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
ROOM = "99000000000000001"
ALICE, BOB = "8:acs:r_alice", "8:acs:r_bob"


@pytest.fixture
def stores(storage):
    """The rooms, calls and outbox stores of one rooms table (they share each room's partition)."""
    clock = ManualClock(NOW)
    return storage.build(
        lambda table: (MemoryRoomsStore(table), MemoryCallsStore(table), MemoryOutbox(table, clock)),
        lambda tables, name: (TableRoomsStore(tables, name), TableCallsStore(tables, name), TableOutbox(tables, name, clock)),
    )


@pytest.fixture
def rooms(stores):
    return stores[0]


@pytest.fixture
def calls(stores):
    return stores[1]


@pytest.fixture
def outbox(stores):
    return stores[2]


def a_room(rooms):
    return rooms.create(
        Room(id=ROOM, created_at=NOW, valid_from=NOW, valid_until=NOW + timedelta(days=1), pstn_dial_out_enabled=True),
        {ALICE: Role.PRESENTER, BOB: Role.ATTENDEE},
    )


def endpoint(participant_id, raw_id, **fields):
    return CallParticipant(participant_id, raw_id, EndpointKind.VOIP, "connected", NOW, joined_role=Role.PRESENTER, **fields)


def started(sequence=1) -> tuple[Call, CallParticipant]:
    alice = endpoint("p1", ALICE)
    return Call(ROOM, "c2VydmVy", "active", NOW, ALICE, 1, sequence, "corr", participants=(alice,)), alice


def events_row(sequence):
    event = OutgoingEvent(f"e{sequence}", "Microsoft.Communication.CallStarted", "call/c2VydmVy", {"n": sequence}, NOW)
    return outbox_entities(ROOM, sequence, "c2VydmVy", [event])


def without_etags(call: Call) -> Call:
    return replace(call, etag="", participants=tuple(replace(p, etag="") for p in call.participants))


def test_a_room_without_a_call_has_none(calls):
    assert calls.current(ROOM) is None


def test_the_first_call_reads_back_with_its_endpoints_and_etags(rooms, calls):
    a_room(rooms)
    call, alice = started()
    automated = endpoint("p2", BOB, muted=True, automation=AutomationContext("conn", "https://app.example/cb", "ctx"))
    committed = calls.commit(None, replace(call, connected=2), [alice, automated])
    read = calls.current(ROOM)
    assert committed.etag and read.etag == committed.etag
    assert all(p.etag for p in read.participants)
    assert without_etags(read) == without_etags(replace(call, connected=2, participants=(alice, automated)))


def test_two_first_calls_racing_one_wins(rooms, calls):
    a_room(rooms)
    call, alice = started()
    calls.commit(None, call, [alice])
    with pytest.raises(ConcurrentChange):
        calls.commit(None, replace(call, server_call_id="b3RoZXI"), [alice])
    assert calls.current(ROOM).server_call_id == "c2VydmVy"


def test_a_commit_from_a_stale_read_is_a_concurrent_change_and_writes_nothing(rooms, calls, outbox):
    a_room(rooms)
    call, alice = started()
    calls.commit(None, call, [alice])
    read = calls.current(ROOM)
    bob = endpoint("p2", BOB)
    calls.commit(read, replace(read, connected=2, sequence=2), [bob])
    with pytest.raises(ConcurrentChange):
        calls.commit(read, replace(read, state="ended", connected=0, sequence=2), [replace(alice, state="disconnected")],
                     events_row(2))
    now = calls.current(ROOM)
    assert (now.state, now.sequence, now.connected) == ("active", 2, 2)
    assert {p.participant_id: p.state for p in now.participants} == {"p1": "connected", "p2": "connected"}
    assert outbox.pending(ROOM) == []


def test_outbox_rows_commit_with_the_change(rooms, calls, outbox):
    a_room(rooms)
    call, alice = started()
    calls.commit(None, call, [alice], events_row(1))
    [row] = outbox.pending(ROOM)
    assert (row["RowKey"], row["ServerCallId"], row["State"], row["Attempts"]) == ("ev|000000000001|000", "c2VydmVy", "pending", 0)


def test_the_room_guard_holds_the_change_to_the_room_as_read(rooms, calls):
    record = a_room(rooms)
    call, alice = started()
    calls.commit(None, call, [alice], room_etag=record.etag)
    # The guard changes the room's ETag: a room change from before the join must read again.
    with pytest.raises(ConcurrentChange):
        rooms.replace_room(record, replace(record.room, pstn_dial_out_enabled=False))
    guarded = rooms.get(ROOM)
    assert guarded.etag != record.etag and guarded.room == record.room
    assert rooms.roster(guarded) == {ALICE: Role.PRESENTER, BOB: Role.ATTENDEE}


def test_a_join_guarded_by_a_stale_room_read_is_a_concurrent_change(rooms, calls):
    record = a_room(rooms)
    call, alice = started()
    calls.commit(None, call, [alice])
    read = calls.current(ROOM)
    rooms.commit_roster(record, rooms.roster(record), {ALICE: Role.PRESENTER}, NOW)  # Bob leaves the roster
    with pytest.raises(ConcurrentChange):
        calls.commit(read, replace(read, connected=2, sequence=2), [endpoint("p2", BOB)], room_etag=record.etag)
    assert [p.participant_id for p in calls.current(ROOM).participants] == ["p1"]


def test_a_join_guarded_by_a_room_gone_is_a_concurrent_change(rooms, calls):
    record = a_room(rooms)
    rooms.purge(ROOM)
    call, alice = started()
    with pytest.raises(ConcurrentChange):
        calls.commit(None, call, [alice], room_etag=record.etag)
    assert calls.current(ROOM) is None


def test_an_endpoint_changes_under_its_own_etag(rooms, calls):
    a_room(rooms)
    call, alice = started()
    calls.commit(None, call, [alice])
    [read] = calls.current(ROOM).participants
    muted = calls.update_endpoint(ROOM, call.server_call_id, replace(read, muted=True))
    assert muted.etag != read.etag and calls.current(ROOM).participants[0].muted
    with pytest.raises(ConcurrentChange):
        calls.update_endpoint(ROOM, call.server_call_id, replace(read, video_on=True))
    with pytest.raises(ConcurrentChange):
        calls.update_endpoint(ROOM, call.server_call_id, endpoint("p9", BOB, etag=read.etag))
    assert not calls.current(ROOM).participants[0].video_on


def test_active_call_rooms_and_the_purge_of_a_room(rooms, calls):
    a_room(rooms)
    call, alice = started()
    calls.commit(None, call, [alice])
    assert calls.active_call_rooms() == [ROOM]
    read = calls.current(ROOM)
    calls.commit(read, replace(read, state="ended", connected=0, sequence=2, ended_at=NOW, end_reason="roomDeleted"),
                 [replace(alice, state="disconnected", left_at=NOW, leave_reason="roomDeleted")])
    assert calls.active_call_rooms() == []
    rooms.purge(ROOM)
    assert calls.current(ROOM) is None


def test_a_call_change_staged_into_a_roster_change_commits_with_it_or_not_at_all(rooms, calls):
    record = a_room(rooms)
    call, alice = started()
    calls.commit(None, call, [alice])
    read = calls.current(ROOM)
    [unmuted] = read.participants
    as_consumer = {ALICE: Role.CONSUMER, BOB: Role.ATTENDEE}
    staged = calls.staged_commit(read, replace(read, sequence=2), [replace(unmuted, muted=True)])
    calls.update_endpoint(ROOM, read.server_call_id, replace(unmuted, video_on=True))  # the endpoint changed since
    with pytest.raises(ConcurrentChange):
        rooms.commit_roster(record, rooms.roster(record), as_consumer, NOW, staged)
    assert rooms.roster(rooms.get(ROOM))[ALICE] is Role.PRESENTER  # the roster did not change either
    again = calls.current(ROOM)
    staged = calls.staged_commit(again, replace(again, sequence=2), [replace(again.participants[0], muted=True)])
    committed = rooms.commit_roster(rooms.get(ROOM), rooms.roster(rooms.get(ROOM)), as_consumer, NOW, staged)
    assert rooms.roster(committed)[ALICE] is Role.CONSUMER
    after = calls.current(ROOM)
    assert after.sequence == 2 and after.participants[0].muted and after.participants[0].video_on


def test_an_endpoint_change_guarded_by_a_stale_room_read_is_a_concurrent_change(rooms, calls):
    record = a_room(rooms)
    call, alice = started()
    calls.commit(None, call, [alice])
    [read] = calls.current(ROOM).participants
    rooms.commit_roster(record, rooms.roster(record), {ALICE: Role.CONSUMER, BOB: Role.ATTENDEE}, NOW)
    with pytest.raises(ConcurrentChange):
        calls.update_endpoint(ROOM, call.server_call_id, replace(read, muted=False, video_on=True), room_etag=record.etag)
    assert calls.current(ROOM).participants[0].video_on is False
    guarded = calls.update_endpoint(ROOM, call.server_call_id, replace(read, video_on=True), room_etag=rooms.get(ROOM).etag)
    assert guarded.video_on and rooms.get(ROOM).etag != record.etag
