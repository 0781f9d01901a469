"""Room-call rules on the stores' in-memory twins: joining, leaving, roles, roster and room changes, events with each change, phone lines."""
from datetime import datetime, timedelta, timezone

import pytest

from shared.calls.memory import MemoryCallsStore, MemoryPstnLines
from shared.calls.model import Capability, EndpointKind, capabilities_of
from shared.calls.pstn import DialOutcome
from shared.calls.service import CallsService
from shared.core.clock import ManualClock
from functions.errors import ROOM_CALLS_ERRORS, HttpError
from shared.core.errors import DomainError
from shared.events.model import CALL_ENDED, CALL_STARTED, PARTICIPANT_ADDED, PARTICIPANT_REMOVED
from shared.rooms.changes import RoomChanges
from shared.rooms.memory import MemoryRoomsStore
from shared.rooms.model import CreateRoomRequest, Role
from shared.rooms.service import RoomsService
from shared.storage.memory import MemoryTable
from tests.support.twins import CALLER_NUMBERS, calls_on_twins

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
PRESENTER, ATTENDEE, CONSUMER, OUTSIDER = "8:acs:r_presenter", "8:acs:r_attendee", "8:acs:r_consumer", "8:acs:r_outsider"
PHONE, OTHER_PHONE, THIRD_PHONE = "+14255550123", "+14255550124", "+14255550125"


@pytest.fixture
def world():
    return calls_on_twins(NOW)


@pytest.fixture
def room_id(world):
    roster = {PRESENTER: Role.PRESENTER, ATTENDEE: Role.ATTENDEE, CONSUMER: Role.CONSUMER}
    return world.rooms.create(CreateRoomRequest(None, None, True, roster)).room.id


def refusal(call, *args, **kwargs) -> HttpError:
    """The room-call API's answer to the domain error `call` raises."""
    with pytest.raises(DomainError) as caught:
        call(*args, **kwargs)
    return ROOM_CALLS_ERRORS.http_error(caught.value)


def event_types(world, room_id):
    return [event.event_type for event in world.outbox.history(room_id=room_id)]


def test_the_first_join_starts_the_call_and_the_next_joins_it(world, room_id):
    call, first, caller, _ = world.calls.join(room_id, PRESENTER)
    assert call.active and call.started_by == PRESENTER and caller.role is Role.PRESENTER
    call, second, _, _ = world.calls.join(room_id, ATTENDEE)
    assert call.connected == 2 and second.joined_role is Role.ATTENDEE
    again, endpoint, _, _ = world.calls.join(room_id, ATTENDEE)  # joining again changes nothing
    assert endpoint.participant_id == second.participant_id and again.connected == 2
    assert event_types(world, room_id) == [CALL_STARTED, PARTICIPANT_ADDED, PARTICIPANT_ADDED]
    assert world.notified == [room_id, room_id]


def test_only_roster_users_join(world, room_id):
    error = refusal(world.calls.join, room_id, OUTSIDER)
    assert (error.status, error.code) == (403, "NotInvited")
    assert world.calls.current_call(room_id) is None and event_types(world, room_id) == []


def test_the_last_one_out_ends_the_call_and_the_next_join_starts_another(world, room_id):
    first, _, _, _ = world.calls.join(room_id, PRESENTER)
    world.calls.join(room_id, ATTENDEE)
    world.calls.act_self(room_id, ATTENDEE, "leave")
    assert world.calls.current_call(room_id).active
    world.calls.act_self(room_id, PRESENTER, "leave")
    ended = world.calls.current_call(room_id)
    assert (ended.state, ended.end_reason, ended.connected) == ("ended", "lastParticipantLeft", 0)
    assert event_types(world, room_id)[-3:] == [PARTICIPANT_REMOVED, PARTICIPANT_REMOVED, CALL_ENDED]
    second, _, _, _ = world.calls.join(room_id, ATTENDEE)
    assert second.server_call_id != first.server_call_id and second.sequence > ended.sequence


@pytest.mark.parametrize("role_id, role", [(PRESENTER, Role.PRESENTER), (ATTENDEE, Role.ATTENDEE), (CONSUMER, Role.CONSUMER)])
@pytest.mark.parametrize("action", ["unmuteMic", "startVideo", "startScreenShare"])
def test_self_actions_follow_the_role_table(world, room_id, role_id, role, action):
    world.calls.join(room_id, role_id)
    needed = {"unmuteMic": Capability.UNMUTE_MIC, "startVideo": Capability.TURN_VIDEO_ON,
              "startScreenShare": Capability.SHARE_SCREEN}[action]
    if needed in capabilities_of(role, True):
        world.calls.act_self(room_id, role_id, action)
    else:
        error = refusal(world.calls.act_self, room_id, role_id, action)
        assert (error.status, error.code, error.target) == (403, "MissingCapability", needed.value)


def test_only_a_presenter_mutes_or_removes_others(world, room_id):
    world.calls.join(room_id, PRESENTER)
    _, attendee, _, _ = world.calls.join(room_id, ATTENDEE)
    _, consumer, _, _ = world.calls.join(room_id, CONSUMER)
    error = refusal(world.calls.act_on, room_id, ATTENDEE, consumer.participant_id, "mute")
    assert (error.status, error.code) == (403, "MissingCapability")
    assert world.calls.act_on(room_id, PRESENTER, attendee.participant_id, "mute").muted
    removed = world.calls.act_on(room_id, PRESENTER, attendee.participant_id, "remove")
    assert (removed.state, removed.leave_reason) == ("disconnected", "removedByParticipant")


def test_a_role_change_applies_to_the_next_action(world, room_id):
    world.calls.join(room_id, CONSUMER)
    refusal(world.calls.act_self, room_id, CONSUMER, "unmuteMic")
    world.rooms.update_participants(room_id, {CONSUMER: Role.ATTENDEE})
    world.calls.act_self(room_id, CONSUMER, "unmuteMic")


def test_leaving_the_roster_leaves_the_call_and_deleting_the_room_ends_it(world, room_id):
    world.calls.join(room_id, PRESENTER)
    _, attendee, _, _ = world.calls.join(room_id, ATTENDEE)
    world.rooms.update_participants(room_id, {ATTENDEE: None})
    gone = world.calls.current_call(room_id).participant(attendee.participant_id)
    assert (gone.state, gone.leave_reason) == ("disconnected", "removedFromRoom")
    world.rooms.delete(room_id)
    call = world.calls.current_call(room_id)
    assert (call.state, call.end_reason) == ("ended", "roomDeleted")


def test_the_sweep_ends_calls_of_deleted_and_expired_rooms(world, room_id):
    world.calls.join(room_id, PRESENTER)
    short = world.rooms.create(CreateRoomRequest(None, NOW + timedelta(hours=1), False, {PRESENTER: Role.PRESENTER})).room
    world.calls.join(short.id, PRESENTER)
    assert world.calls.sweep() == 0
    world.clock.advance(timedelta(hours=1))
    assert world.calls.sweep() == 1
    assert world.calls.current_call(short.id).end_reason == "roomExpired"
    assert world.calls.current_call(room_id).active


def test_a_dial_out_takes_a_line_of_the_caller_number_until_the_phone_leaves(world, room_id):
    world.calls.join(room_id, PRESENTER)
    first = world.calls.dial_out(room_id, PRESENTER, PHONE, CALLER_NUMBERS[0])
    assert first.outcome is DialOutcome.ANSWERED and first.participant.kind is EndpointKind.PHONE
    world.calls.dial_out(room_id, PRESENTER, OTHER_PHONE, CALLER_NUMBERS[0])
    error = refusal(world.calls.dial_out, room_id, PRESENTER, THIRD_PHONE, CALLER_NUMBERS[0])
    assert (error.status, error.code) == (409, "ConcurrentCallLimitReached")
    world.calls.phone_event(f"{room_id}|{first.participant.participant_id}", "leave")
    assert world.calls.dial_out(room_id, PRESENTER, THIRD_PHONE, CALLER_NUMBERS[0]).participant.connected
    assert [target for _, target, _ in world.pstn.placed] == [PHONE, OTHER_PHONE, THIRD_PHONE]


def test_a_phone_that_does_not_answer_gives_its_line_back(world, room_id):
    world.calls.join(room_id, PRESENTER)
    world.pstn.outcomes.update({PHONE: DialOutcome.BUSY, OTHER_PHONE: DialOutcome.DECLINED})
    busy = world.calls.dial_out(room_id, PRESENTER, PHONE, CALLER_NUMBERS[1])
    declined = world.calls.dial_out(room_id, PRESENTER, OTHER_PHONE, CALLER_NUMBERS[1])
    assert (busy.outcome, busy.participant, declined.outcome, declined.participant) == (
        DialOutcome.BUSY, None, DialOutcome.DECLINED, None)
    world.pstn.outcomes.clear()
    # Both lines are free again.
    for number in (PHONE, OTHER_PHONE):
        assert world.calls.dial_out(room_id, PRESENTER, number, CALLER_NUMBERS[1]).participant.connected


def test_a_phone_may_only_mute_itself_and_a_dial_out_needs_the_room_flag(world, room_id):
    world.calls.join(room_id, PRESENTER)
    phone = world.calls.dial_out(room_id, PRESENTER, PHONE, CALLER_NUMBERS[0]).participant
    reference = f"{room_id}|{phone.participant_id}"
    assert world.calls.phone_event(reference, "muteMic").muted
    assert refusal(world.calls.phone_event, reference, "startVideo").code == "MissingCapability"
    closed = world.rooms.create(CreateRoomRequest(None, None, False, {PRESENTER: Role.PRESENTER})).room
    world.calls.join(closed.id, PRESENTER)
    error = refusal(world.calls.dial_out, closed.id, PRESENTER, OTHER_PHONE, CALLER_NUMBERS[0])
    assert (error.status, error.code, error.target) == (403, "MissingCapability", "addPhoneNumber")


class RosterChangeMidway(MemoryCallsStore):
    """The calls' twin, with `change` committed once right before the first endpoint write: a role
    change landing between an action's capability check and its commit."""

    def __init__(self, table, change=None) -> None:
        super().__init__(table)
        self.change = change

    def update_endpoint(self, *args, **kwargs):
        change, self.change = self.change, None
        if change is not None:
            change()
        return super().update_endpoint(*args, **kwargs)


@pytest.mark.parametrize("action, capability", [("startVideo", "turnVideoOn"), ("unmuteMic", "unmuteMic")])
def test_turning_on_rechecks_a_role_changed_between_check_and_commit(action, capability):
    table, changes, clock = MemoryTable(), RoomChanges(), ManualClock(NOW)
    rooms = RoomsService(MemoryRoomsStore(table), clock, 100, changes)
    store = RosterChangeMidway(table)
    calls = CallsService(rooms, store, clock, None, MemoryPstnLines(), CALLER_NUMBERS, [], changes)
    room_id = rooms.create(CreateRoomRequest(None, None, False, {ATTENDEE: Role.ATTENDEE})).room.id
    calls.join(room_id, ATTENDEE)
    calls.act_self(room_id, ATTENDEE, "muteMic")
    store.change = lambda: rooms.update_participants(room_id, {ATTENDEE: Role.CONSUMER})
    error = refusal(calls.act_self, room_id, ATTENDEE, action)
    assert (error.status, error.code, error.target) == (403, "MissingCapability", capability)
    [endpoint] = calls.current_call(room_id).participants
    assert (endpoint.muted, endpoint.video_on) == (True, False)  # nothing a Consumer may not hold
