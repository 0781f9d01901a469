"""Table storage behaviour on real Azurite: transaction limits, copy-on-write rosters, the expiry sweep."""
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.core.clock import ManualClock
from shared.rooms.model import CreateRoomRequest, Role
from shared.rooms.store import RETIRED_GENERATION_TTL
from shared.bootstrap import build_services
from shared.config.settings import Settings
from shared.storage.transactions import TransactionTooLarge, check_transaction

pytestmark = pytest.mark.stack


@pytest.fixture
def clocked(stack):
    clock = ManualClock(datetime.now(timezone.utc))
    services = build_services(Settings.from_env(stack.env, served_at=stack.base_url), clock=clock)
    yield services, clock
    services.close()


def partition_rows(services, room_id):
    table = services.tables.table(services.settings.table_name("Rooms"))
    return [e["RowKey"] for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": room_id})]


def test_transaction_limits_are_ours_not_azurites():
    ops = [("upsert", {"PartitionKey": "a", "RowKey": str(i)}) for i in range(101)]
    with pytest.raises(TransactionTooLarge):
        check_transaction(ops)
    with pytest.raises(TransactionTooLarge):
        check_transaction([("upsert", {"PartitionKey": "a", "RowKey": "1"}), ("upsert", {"PartitionKey": "b", "RowKey": "1"})])
    check_transaction(ops[:100])


def test_sweep_purges_rooms_past_validity_plus_grace(clocked):
    services, clock = clocked
    grace = timedelta(hours=services.settings.expired_room_grace_hours)
    start = clock()
    request = CreateRoomRequest(start, start + timedelta(hours=1), False, {"8:acs:sweep_1": Role.PRESENTER})
    record = services.rooms.create(request)
    keeper = services.rooms.create(replace(request, valid_until=start + timedelta(days=3)))
    clock.set(start + timedelta(hours=1) + grace - timedelta(seconds=1))
    services.rooms.sweep(grace)
    assert len(partition_rows(services, record.room.id)) == 2  # still inside the grace period
    clock.set(start + timedelta(hours=1) + grace + timedelta(seconds=1))
    services.rooms.sweep(grace)
    assert partition_rows(services, record.room.id) == []
    assert len(partition_rows(services, keeper.room.id)) == 2


def test_deleted_room_rows_go_with_the_sweep_once_the_grace_is_over(clocked):
    services, clock = clocked
    grace = timedelta(hours=services.settings.expired_room_grace_hours)
    record = services.rooms.create(CreateRoomRequest(None, None, False, {"8:acs:del_1": Role.ATTENDEE}))
    services.rooms.delete(record.room.id)
    clock.advance(grace - timedelta(seconds=1))
    services.rooms.sweep(grace)
    assert len(partition_rows(services, record.room.id)) == 2  # kept, for its last call to be read
    clock.advance(timedelta(seconds=2))
    services.rooms.sweep(grace)
    assert partition_rows(services, record.room.id) == []


def test_large_change_writes_a_new_generation_and_old_one_is_swept(clocked):
    services, clock = clocked
    record = services.rooms.create(CreateRoomRequest(None, None, False, {f"8:acs:cow_{i}": Role.ATTENDEE for i in range(3)}))
    result = services.rooms.update_participants(record.room.id, {f"8:acs:cow_{i}": Role.CONSUMER for i in range(150)})
    assert result.record.generation != record.generation
    assert result.record.counts.consumers == 150 and result.record.counts.total == 150
    rows = partition_rows(services, record.room.id)
    assert len(rows) == 1 + 3 + 150  # the retired generation stays readable for open cursors
    clock.advance(RETIRED_GENERATION_TTL + timedelta(seconds=1))
    services.rooms.sweep(timedelta(hours=24))
    assert len(partition_rows(services, record.room.id)) == 1 + 150
    page, _ = services.rooms.list_participants(record.room.id, None, None, 1000)
    assert {role for _, role in page.items} == {Role.CONSUMER} and len(page.items) == 150


def test_a_role_change_too_large_for_one_transaction_still_mutes_every_endpoint(clocked):
    services, _ = clocked
    users = [f"8:acs:cowcall_{i:03d}" for i in range(120)]
    record = services.rooms.create(CreateRoomRequest(None, None, False, {user: Role.ATTENDEE for user in users}))
    for user in users:
        services.calls.join(record.room.id, user)  # Attendees join unmuted
    result = services.rooms.update_participants(record.room.id, {user: Role.CONSUMER for user in users})
    assert result.record.generation != record.generation  # the copy-on-write path, with the call's writes joined
    call = services.calls.current_call(record.room.id)
    assert len(call.participants) == 120 and all(p.muted for p in call.participants)
