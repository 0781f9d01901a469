"""The RoomsStore contract, on the in-memory twin and on TableRoomsStore on Azurite: ETags, rosters, paging, listing, purge."""
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.rooms.memory import MemoryRoomsStore
from shared.rooms.model import Role, Room
from shared.rooms.store import RoomIdTaken, TableRoomsStore
from shared.storage.transactions import ConcurrentChange

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
ALICE, BOB, CAROL = "8:acs:r_alice", "8:acs:r_bob", "8:acs:r_carol"


@pytest.fixture
def store(storage):
    return storage.build(MemoryRoomsStore, TableRoomsStore)


def room(room_id="99000000000000001", valid_until=NOW + timedelta(days=1)) -> Room:
    return Room(id=room_id, created_at=NOW, valid_from=NOW, valid_until=valid_until, pstn_dial_out_enabled=False)


def test_a_created_room_reads_back_with_its_roster_and_an_etag(store):
    created = store.create(room(), {ALICE: Role.PRESENTER, BOB: Role.ATTENDEE})
    record = store.get(created.room.id)
    assert record == created and record.etag and not record.deleted
    assert (record.counts.presenters, record.counts.attendees) == (1, 1)
    assert store.roster(record) == {ALICE: Role.PRESENTER, BOB: Role.ATTENDEE}
    assert (store.role_of(record, BOB), store.role_of(record, CAROL)) == (Role.ATTENDEE, None)
    assert store.get("99000000000000002") is None


def test_an_id_in_use_is_taken(store):
    store.create(room(), {})
    with pytest.raises(RoomIdTaken):
        store.create(room(), {ALICE: Role.PRESENTER})


def test_a_change_from_a_stale_read_is_a_concurrent_change_and_changes_nothing(store):
    read = store.create(room(), {})
    later = replace(read.room, pstn_dial_out_enabled=True)
    updated = store.replace_room(read, later)
    assert updated.etag != read.etag and store.get(read.room.id) == updated
    with pytest.raises(ConcurrentChange):
        store.replace_room(read, replace(read.room, valid_until=NOW + timedelta(days=2)))
    with pytest.raises(ConcurrentChange):
        store.mark_deleted(read, NOW)
    with pytest.raises(ConcurrentChange):
        store.commit_roster(read, {}, {ALICE: Role.PRESENTER}, NOW)
    assert store.get(read.room.id) == updated and store.roster(updated) == {}


def test_a_roster_commit_applies_the_whole_change(store):
    read = store.create(room(), {ALICE: Role.PRESENTER, BOB: Role.ATTENDEE})
    new = {ALICE: Role.CONSUMER, CAROL: Role.COLLABORATOR}
    committed = store.commit_roster(read, store.roster(read), new, NOW)
    assert committed.etag != read.etag and store.get(read.room.id) == committed
    assert store.roster(committed) == new
    assert (committed.counts.consumers, committed.counts.collaborators, committed.counts.total) == (1, 1, 2)


def test_participants_page_in_raw_id_order_with_a_cursor(store):
    roster = {f"8:acs:r_{index:02d}": Role.ATTENDEE for index in range(7)}
    record = store.create(room(), roster)
    first = store.participants_page(record.room.id, record.generation, None, 3)
    assert first.items == [(raw_id, Role.ATTENDEE) for raw_id in sorted(roster)[:3]]
    second = store.participants_page(record.room.id, record.generation, first.after, 3)
    last = store.participants_page(record.room.id, record.generation, second.after, 3)
    assert [raw_id for raw_id, _ in first.items + second.items + last.items] == sorted(roster)
    assert last.after is None


def test_deleted_and_expired_rooms_leave_the_listing_and_are_due_for_purging(store):
    live = [store.create(room(f"9900000000000000{index}"), {}) for index in (1, 2, 3)]
    gone = store.create(room("99000000000000004"), {})
    store.mark_deleted(gone, NOW)
    assert store.get(gone.room.id).deleted and store.get(gone.room.id).deleted_at == NOW
    expired = store.create(room("99000000000000005", valid_until=NOW + timedelta(minutes=1)), {})
    first = store.active_rooms_page(NOW + timedelta(minutes=2), None, 2)
    second = store.active_rooms_page(NOW + timedelta(minutes=2), first.after, 2)
    assert [r.id for r in first.items + second.items] == [r.room.id for r in live] and second.after is None
    due = store.expired_room_ids(NOW + timedelta(minutes=2))
    assert sorted(due) == [gone.room.id, expired.room.id]


def test_purge_removes_the_room_and_its_roster(store):
    record = store.create(room(), {ALICE: Role.PRESENTER})
    store.purge(record.room.id)
    assert store.get(record.room.id) is None and store.role_of(record, ALICE) is None
    store.purge(record.room.id)  # purging again (a second sweep) is no error
