"""Phone legs the app ends are hung up at the PSTN gateway: outbox rows written with the call change, sent after it commits, retried a bounded number of times."""
from __future__ import annotations

import logging
import uuid

from .changes import CallChange
from .model import CallParticipant, EndpointKind, EndpointState
from .pstn import PstnNetwork, leg_reference
from ..core.clock import Clock
from ..core.errors import GatewayUnavailable
from ..events.dispatcher import Dispatcher
from ..events.model import OutgoingEvent
from ..events.outbox import HANG_UP_PREFIX, Outbox, events_from_entity, outbox_entities

log = logging.getLogger("anteroom.pstn")

HANG_UP = "Anteroom.PstnHangUp"  # the outbox event type of one leg to hang up
# With the outbox's back-off (1 s doubling to 5 min, the timer every 10 s) about 20 minutes in all.
MAX_HANG_UP_ATTEMPTS = 12
# Why a phone endpoint ended when the network ended it (the phone hung up, or never answered): the
# gateway already knows.
ENDED_BY_THE_NETWORK = frozenset({"phoneHungUp", "declined", "busy"})


def legs_to_hang_up(change: CallChange) -> list[CallParticipant]:
    """Phone endpoints this change takes off the call (ringing or connected before) that the network did not end."""
    legs = []
    for endpoint in change.changed:
        if endpoint.kind is not EndpointKind.PHONE or endpoint.state != EndpointState.DISCONNECTED:
            continue
        previous = change.before.participant(endpoint.participant_id) if change.before is not None else None
        if previous is None or previous.state == EndpointState.DISCONNECTED or endpoint.leave_reason in ENDED_BY_THE_NETWORK:
            continue
        legs.append(endpoint)
    return legs


class PhoneHangUps:
    """CallChangeListener: every phone leg a change ends (terminate, removal, the room deleted or
    expired, a cancelled or expired invitation) becomes an `hu|` row in the change's own transaction;
    the hang-up dispatcher tells the gateway once it committed."""

    def __init__(self, dispatcher: Dispatcher, clock: Clock) -> None:
        self._dispatcher = dispatcher
        self._clock = clock

    def entities(self, change: CallChange) -> list[dict]:
        now = self._clock()
        events = [
            OutgoingEvent(str(uuid.uuid4()), HANG_UP, leg_reference(change.room_id, leg.participant_id),
                          {"phoneNumber": leg.raw_id.removeprefix("4:"), "reason": leg.leave_reason}, now)
            for leg in legs_to_hang_up(change)
        ]
        if not events:
            return []
        return outbox_entities(change.room_id, change.after.sequence, change.after.server_call_id, events,
                               prefix=HANG_UP_PREFIX)

    def committed(self, change: CallChange, entities: list[dict]) -> None:
        if entities:
            self._dispatcher.notify(change.room_id)


class HangUpDispatcher(Dispatcher):
    """The outbox dispatcher (background notify, timer sweep) for `hu|` rows: each leg's hang-up
    goes to the gateway; a row the gateway could not take is tried again with the outbox's back-off,
    and after `max_attempts` given up with an error in the log naming the leg."""

    def __init__(self, outbox: Outbox, gateway: PstnNetwork, max_attempts: int = MAX_HANG_UP_ATTEMPTS) -> None:
        super().__init__(outbox, sink=None)
        self._gateway = gateway
        self._max_attempts = max_attempts

    def dispatch_room(self, room_id: str) -> int:
        with self._lock_for(room_id):
            done, failed = [], []
            for row in self._outbox.pending(room_id):
                legs = [event.subject for event in events_from_entity(row)]
                try:
                    for reference in legs:
                        self._gateway.hang_up(reference)  # again for a leg hung up last time: no error
                    done.append(row)
                except GatewayUnavailable as error:
                    if row["Attempts"] + 1 >= self._max_attempts:
                        log.error("gave up hanging up the phone legs %s after %d attempts; the PSTN gateway may "
                                  "still have them up: %s", legs, row["Attempts"] + 1, error)
                        done.append(row)
                    else:
                        log.warning("hanging up the phone legs %s failed (%s); it will be retried", legs, error)
                        failed.append(row)
            return self._settle(room_id, done, failed)
