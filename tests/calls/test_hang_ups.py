"""Which phone legs a call change hangs up at the gateway, and the hang-up dispatcher's bounded retries (on the outbox's twin)."""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.calls.changes import CallChange
from shared.calls.hangups import MAX_HANG_UP_ATTEMPTS, HangUpDispatcher, PhoneHangUps, legs_to_hang_up
from shared.calls.model import Call, CallParticipant, EndReason, EndpointKind
from shared.core.clock import ManualClock
from shared.core.errors import GatewayUnavailable, NoActiveCall
from shared.events.memory import MemoryOutbox
from shared.events.outbox import HANG_UP_PREFIX
from shared.rooms.model import CreateRoomRequest, Role
from shared.storage.memory import MemoryTable, Write
from tests.support.twins import CALLER_NUMBERS, calls_on_twins

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
ROOM = "99000000000000077"


def endpoint(pid: str, state: str = "connected", kind=EndpointKind.PHONE) -> CallParticipant:
    raw_id = f"4:+1425555{pid}" if kind is EndpointKind.PHONE else f"8:acs:r_{pid}"
    return CallParticipant(pid, raw_id, kind, state, T0 if state == "connected" else None,
                           joined_role=None if kind is EndpointKind.PHONE else Role.PRESENTER)


def change_ending(*pairs: tuple[CallParticipant, str]) -> CallChange:
    """A change taking each endpoint off the call with its reason."""
    before = Call(ROOM, "c2VydmVy", "active", T0, "8:acs:r_alice", 3, 4, "corr",
                  participants=tuple(p for p, _ in pairs))
    gone = [replace(p, state="disconnected", left_at=T0, leave_reason=reason) for p, reason in pairs]
    return CallChange(ROOM, before, replace(before, sequence=5, participants=tuple(gone)), gone)


def test_the_app_ending_a_phone_hangs_it_up_and_the_network_ending_it_does_not():
    change = change_ending(
        (endpoint("0001"), "removedByParticipant"), (endpoint("0002"), "roomDeleted"),
        (endpoint("0003", "ringing"), "cancelled"), (endpoint("0004", "ringing"), "callEnded"),
        (endpoint("0005"), "phoneHungUp"), (endpoint("0006", "ringing"), "declined"),
        (endpoint("0007", "ringing"), "busy"), (endpoint("alice", kind=EndpointKind.VOIP), "hungUp"),
    )
    assert [leg.participant_id for leg in legs_to_hang_up(change)] == ["0001", "0002", "0003", "0004"]


class FlakyGateway:
    """A PSTN gateway that is down for its first `down_for` hang-ups."""

    def __init__(self, down_for: int) -> None:
        self.down_for = down_for
        self.hung_up: list[str] = []

    def hang_up(self, reference: str) -> None:
        if self.down_for > 0:
            self.down_for -= 1
            raise GatewayUnavailable("The PSTN gateway could not hang up: connection refused")
        self.hung_up.append(reference)


@pytest.fixture
def world():
    """A committed change that ends one phone, its `hu|` row in the table, and a clock."""
    clock, table = ManualClock(T0), MemoryTable()
    change = change_ending((endpoint("0001"), "removedByServer"))
    rows = PhoneHangUps(dispatcher=None, clock=clock).entities(change)
    table.commit([Write("create", row["PartitionKey"], row["RowKey"], row) for row in rows])
    return clock, MemoryOutbox(table, clock, prefix=HANG_UP_PREFIX)


def retry_until_quiet(dispatcher: HangUpDispatcher, outbox: MemoryOutbox, clock: ManualClock) -> int:
    """Run the timer's sweep, 10 minutes apart, until no hang-up is pending; answers how many sweeps ran."""
    sweeps = 0
    while outbox.pending(ROOM):
        clock.set(clock() + timedelta(minutes=10))
        dispatcher.sweep()
        sweeps += 1
        assert sweeps < 100
    return sweeps


def test_a_gateway_down_for_a_while_gets_the_hang_up_later(world):
    clock, outbox = world
    gateway = FlakyGateway(down_for=3)
    dispatcher = HangUpDispatcher(outbox, gateway)
    assert dispatcher.dispatch_room(ROOM) == 0  # the attempt right after the commit failed: still pending
    assert outbox.pending(ROOM)[0]["Attempts"] == 1
    assert retry_until_quiet(dispatcher, outbox, clock) == 3
    assert gateway.hung_up == [f"{ROOM}|0001"]


def test_a_gateway_that_stays_down_is_given_up_with_an_error_naming_the_leg(world, caplog):
    clock, outbox = world
    gateway = FlakyGateway(down_for=10_000)
    dispatcher = HangUpDispatcher(outbox, gateway)
    with caplog.at_level(logging.WARNING, logger="anteroom.pstn"):
        dispatcher.dispatch_room(ROOM)
        retry_until_quiet(dispatcher, outbox, clock)
    assert gateway.down_for == 10_000 - MAX_HANG_UP_ATTEMPTS  # bounded: exactly that many tries
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and f"{ROOM}|0001" in errors[0].getMessage() and "gave up" in errors[0].getMessage()


def test_a_phone_answering_after_the_call_ended_is_hung_up_at_once():
    """No call change ends a leg that never joined: the dial-out hangs it up itself."""
    world = calls_on_twins(T0)
    room_id = world.rooms.create(CreateRoomRequest(None, None, True, {"8:acs:r_p": Role.PRESENTER})).room.id
    world.calls.join(room_id, "8:acs:r_p")
    answered = world.pstn.place_call

    def ring_while_the_call_ends(source: str, target: str, reference: str):
        world.calls.end_call(room_id, EndReason.HUNG_UP_FOR_EVERYONE)  # while the phone rings
        return answered(source, target, reference)

    world.pstn.place_call = ring_while_the_call_ends
    with pytest.raises(NoActiveCall):
        world.calls.dial_out(room_id, "8:acs:r_p", "+14255550100", CALLER_NUMBERS[0])
    [(_, _, reference)] = world.pstn.placed
    assert world.pstn.hung_up == [reference]
