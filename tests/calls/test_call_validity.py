"""Validity edges of room calls with a manual clock, on the stores' in-memory twins: before, at and after each edge."""
from datetime import datetime, timedelta, timezone

import pytest

from functions.errors import ROOM_CALLS_ERRORS
from shared.core.errors import DomainError
from shared.rooms.model import CreateRoomRequest, Role
from tests.support.twins import calls_on_twins

TICK = timedelta(microseconds=1)
USER = "8:acs:validity_user"


@pytest.fixture
def world():
    start = datetime.now(timezone.utc) + timedelta(days=1)
    services = calls_on_twins(datetime.now(timezone.utc))
    record = services.rooms.create(CreateRoomRequest(start, start + timedelta(hours=2), False, {USER: Role.PRESENTER}))
    return services, services.clock, record.room


def refused_with(services, room, code):
    with pytest.raises(DomainError) as caught:
        services.calls.join(room.id, USER)
    answer = ROOM_CALLS_ERRORS.http_error(caught.value)
    assert answer.status == 403 and answer.code == code
    return caught.value


@pytest.mark.parametrize("offset, code", [(-timedelta(hours=1), "RoomNotOpenYet"), (-TICK, "RoomNotOpenYet")])
def test_before_valid_from(world, offset, code):
    services, clock, room = world
    clock.set(room.valid_from + offset)
    error = refused_with(services, room, code)
    assert "not open yet" in error.message


@pytest.mark.parametrize("offset", [timedelta(0), TICK, timedelta(hours=1), timedelta(hours=2) - TICK])
def test_inside_the_window(world, offset):
    services, clock, room = world
    clock.set(room.valid_from + offset)
    call, endpoint, caller, _ = services.calls.join(room.id, USER)
    assert call.active and endpoint.connected and caller.role is Role.PRESENTER


@pytest.mark.parametrize("offset", [timedelta(0), TICK, timedelta(days=1)])
def test_at_and_after_valid_until(world, offset):
    services, clock, room = world
    clock.set(room.valid_until + offset)
    error = refused_with(services, room, "RoomExpired")
    assert "expired" in error.message


def test_call_ends_mid_call_at_valid_until(world):
    services, clock, room = world
    clock.set(room.valid_until - timedelta(minutes=5))
    services.calls.join(room.id, USER)
    clock.set(room.valid_until - TICK)
    services.calls.sweep()
    assert services.calls.current_call(room.id).active
    clock.set(room.valid_until)
    assert services.calls.sweep() >= 1
    call = services.calls.current_call(room.id)
    assert call.state == "ended" and call.end_reason == "roomExpired"
    assert all(p.state == "disconnected" for p in call.participants)


def test_any_access_ends_an_expired_call(world):
    services, clock, room = world
    clock.set(room.valid_from)
    services.calls.join(room.id, USER)
    clock.set(room.valid_until + TICK)
    with pytest.raises(DomainError):
        services.calls.act_self(room.id, USER, "muteMic")
    assert services.calls.current_call(room.id).end_reason == "roomExpired"
