"""Times read back from Table entities: the same instants, in UTC, whatever the host's time zone."""
import time
from datetime import datetime, timedelta, timezone

import pytest

from shared.calls.store import TableCallsStore
from shared.rooms.store import TableRoomsStore

NOON_UTC = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)


class _Entity(dict):
    """The parts of azure.data.tables.TableEntity the stores read: the columns and an ETag."""

    metadata = {"etag": 'W/"1"'}


@pytest.fixture
def host_zone_is_not_utc(monkeypatch):
    # A POSIX TZ string (UTC+05:30, no daylight saving) needs no tz database on the machine.
    monkeypatch.setenv("TZ", "IST-05:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_room_read_with_an_offset_keeps_its_instant():
    two_pm_plus_two = NOON_UTC.astimezone(timezone(timedelta(hours=2)))
    room = TableRoomsStore._record(_Entity(
        PartitionKey="99000000000000001", CreatedAt=two_pm_plus_two, ValidFrom=two_pm_plus_two,
        ValidUntil=two_pm_plus_two + timedelta(hours=1), Generation="g1",
    )).room
    assert (room.created_at, room.valid_from, room.valid_until) == (NOON_UTC, NOON_UTC, NOON_UTC + timedelta(hours=1))
    assert room.created_at.tzinfo is timezone.utc


@pytest.mark.usefixtures("host_zone_is_not_utc")
def test_a_naive_call_time_is_read_as_utc_not_as_host_local_time():
    # Table storage's Edm.DateTime is UTC by definition, as the rooms store already reads it.
    participant = TableCallsStore._participant(_Entity(
        RowKey="cp|call-1|p-1", RawId="8:acs:x", Kind="communicationUser", State="connected",
        JoinedAt=NOON_UTC.replace(tzinfo=None),
    ))
    assert participant.joined_at == NOON_UTC and participant.left_at is None
