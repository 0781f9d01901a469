"""The Outbox contract, on the in-memory twin and on TableOutbox on Azurite: pending, delivered, failed with back-off, due rooms, history in commit order."""
from datetime import datetime, timedelta, timezone

import pytest

from shared.core.clock import ManualClock
from shared.events.memory import MemoryOutbox
from shared.events.model import OutgoingEvent
from shared.events.outbox import CALLBACK_PREFIX, TableOutbox, events_from_entity, outbox_entities

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
ROOM_A, ROOM_B = "99000000000000001", "99000000000000002"


@pytest.fixture
def clock():
    return ManualClock(T0)


@pytest.fixture
def outboxes(storage, clock):
    """The events' outbox and the callbacks' (`cb|`), on the same rows."""
    return storage.build(
        lambda table: (MemoryOutbox(table, clock), MemoryOutbox(table, clock, prefix=CALLBACK_PREFIX)),
        lambda tables, name: (TableOutbox(tables, name, clock), TableOutbox(tables, name, clock, prefix=CALLBACK_PREFIX)),
    )


def events(call_id, count, at=T0, first=0):
    return [
        OutgoingEvent(f"{call_id}-{first + index}", "Microsoft.Communication.CallParticipantAdded", f"call/{call_id}",
                      {"index": first + index}, at)
        for index in range(count)
    ]


def commit(storage, room_id, sequence, call_id, batch, **row_options):
    storage.create_rows(outbox_entities(room_id, sequence, call_id, batch, **row_options))


def test_pending_rows_come_in_commit_order_and_each_prefix_reads_its_own(storage, outboxes):
    events_outbox, callbacks_outbox = outboxes
    commit(storage, ROOM_A, 2, "call1", events("call1", 1, first=1))
    commit(storage, ROOM_A, 1, "call1", events("call1", 1))
    commit(storage, ROOM_A, 1, "call1", events("call1", 1), prefix=CALLBACK_PREFIX, destination="https://app.example/cb")
    assert [row["RowKey"] for row in events_outbox.pending(ROOM_A)] == ["ev|000000000001|000", "ev|000000000002|000"]
    [callback] = callbacks_outbox.pending(ROOM_A)
    assert (callback["RowKey"], callback["Destination"]) == ("cb|000000000001|000", "https://app.example/cb")
    assert events_outbox.pending(ROOM_B) == []


def test_a_delivered_row_is_no_longer_pending_and_stays_in_the_history(storage, outboxes, clock):
    outbox, _ = outboxes
    commit(storage, ROOM_A, 1, "call1", events("call1", 2))
    clock.advance(timedelta(seconds=3))
    outbox.mark_delivered(ROOM_A, outbox.pending(ROOM_A))
    assert outbox.pending(ROOM_A) == []
    assert [event.id for event in outbox.history(room_id=ROOM_A)] == ["call1-0", "call1-1"]


def test_a_failed_row_stays_pending_and_is_due_again_after_a_growing_back_off(storage, outboxes, clock):
    outbox, callbacks = outboxes
    commit(storage, ROOM_A, 1, "call1", events("call1", 1))
    assert outbox.rooms_with_due_events() == {ROOM_A}
    for attempts, back_off in enumerate([1, 2, 4, 8], start=1):
        outbox.mark_failed(ROOM_A, outbox.pending(ROOM_A))
        [row] = outbox.pending(ROOM_A)
        assert (row["Attempts"], row["NextAttemptAt"]) == (attempts, clock() + timedelta(seconds=back_off))
        assert outbox.rooms_with_due_events() == set()
        clock.advance(timedelta(seconds=back_off))
        assert outbox.rooms_with_due_events() == {ROOM_A}
    assert callbacks.rooms_with_due_events() == set()
    outbox.mark_delivered(ROOM_A, outbox.pending(ROOM_A))
    assert outbox.rooms_with_due_events() == set()


def test_the_back_off_stops_growing_at_five_minutes(storage, outboxes, clock):
    outbox, _ = outboxes
    commit(storage, ROOM_A, 1, "call1", events("call1", 1))
    for _ in range(10):
        outbox.mark_failed(ROOM_A, outbox.pending(ROOM_A))
    [row] = outbox.pending(ROOM_A)
    assert (row["Attempts"], row["NextAttemptAt"]) == (10, T0 + timedelta(minutes=5))


def test_history_by_room_call_and_time_in_commit_order(storage, outboxes):
    outbox, callbacks = outboxes
    # 31 events make two rows (30 a row); each row's events keep their order.
    commit(storage, ROOM_B, 1, "call2", events("call2", 31))
    commit(storage, ROOM_A, 2, "call1", events("call1", 1, at=T0 + timedelta(minutes=5), first=1))
    commit(storage, ROOM_A, 1, "call1", events("call1", 1))
    commit(storage, ROOM_A, 3, "call1", events("cb", 1), prefix=CALLBACK_PREFIX, destination="https://app.example/cb")
    assert [e.id for e in outbox.history(room_id=ROOM_A)] == ["call1-0", "call1-1"]
    assert [e.id for e in outbox.history(server_call_id="call2")] == [f"call2-{index}" for index in range(31)]
    everything = outbox.history(since=T0)
    assert [e.id for e in everything] == ["call1-0", "call1-1"] + [f"call2-{index}" for index in range(31)]
    assert [e.id for e in outbox.history(since=T0 + timedelta(minutes=1))] == ["call1-1"]
    assert [e.id for e in outbox.history(room_id=ROOM_A, until=T0 + timedelta(minutes=1))] == ["call1-0"]
    assert [e.id for e in callbacks.history(room_id=ROOM_A)] == ["cb-0"]
    first = everything[0]
    assert (first.event_type, first.subject, first.data, first.event_time) == (
        "Microsoft.Communication.CallParticipantAdded", "call/call1", {"index": 0}, T0)


def test_rows_decode_to_the_events_they_were_made_of(storage, outboxes):
    outbox, _ = outboxes
    batch = events("call1", 3)
    commit(storage, ROOM_A, 1, "call1", batch)
    [row] = outbox.pending(ROOM_A)
    assert events_from_entity(row) == batch
