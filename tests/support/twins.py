"""The room-call use cases wired to the stores' in-memory twins, a manual clock and a scripted PSTN network, for fast rule tests."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.calls.events import CallEventsPublisher
from shared.calls.memory import MemoryCallsStore, MemoryPstnLines
from shared.calls.pstn import DialOutcome
from shared.calls.service import CallsService
from shared.core.clock import ManualClock
from shared.events.memory import MemoryOutbox
from shared.rooms.changes import RoomChanges
from shared.rooms.memory import MemoryRoomsStore
from shared.rooms.service import RoomsService
from shared.storage.memory import MemoryTable

CALLER_NUMBERS = ("+18005550100", "+18005550101")


@dataclass
class ScriptedPstn:
    """A PstnNetwork answering every number, unless `outcomes` says otherwise; keeps the calls it placed and hung up."""

    outcomes: dict[str, DialOutcome] = field(default_factory=dict)
    placed: list[tuple[str, str, str]] = field(default_factory=list)
    hung_up: list[str] = field(default_factory=list)

    def place_call(self, source: str, target: str, reference: str) -> DialOutcome:
        self.placed.append((source, target, reference))
        return self.outcomes.get(target, DialOutcome.ANSWERED)

    def hang_up(self, reference: str) -> None:
        self.hung_up.append(reference)


class NotifiedRooms(list):
    """Stands in for the Event Grid dispatcher: notes which rooms it was woken for."""

    def notify(self, room_id: str) -> None:
        self.append(room_id)


@dataclass
class CallsOnTwins:
    clock: ManualClock
    rooms: RoomsService
    calls: CallsService
    outbox: MemoryOutbox
    pstn: ScriptedPstn
    notified: NotifiedRooms


def calls_on_twins(now: datetime, max_participants: int = 100) -> CallsOnTwins:
    """As the composition root wires them (rooms' change hub, call events in the change's transaction), on one MemoryTable."""
    clock = ManualClock(now)
    table = MemoryTable()  # the rooms table: rooms, calls and outbox rows share each room's partition
    room_changes = RoomChanges()
    rooms = RoomsService(MemoryRoomsStore(table), clock, max_participants, room_changes)
    pstn, notified = ScriptedPstn(), NotifiedRooms()
    calls = CallsService(
        rooms, MemoryCallsStore(table), clock, pstn, MemoryPstnLines(), CALLER_NUMBERS,
        [CallEventsPublisher(notified, clock)], room_changes,
    )
    return CallsOnTwins(clock, rooms, calls, MemoryOutbox(table, clock), pstn, notified)
