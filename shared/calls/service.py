"""Room-call use cases: invite-only joining inside the validity window, role-checked actions, PSTN."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from .model import (
    MAX_CALL_PARTICIPANTS,
    AutomationContext,
    Call,
    CallParticipant,
    CallState,
    Capability,
    EndReason,
    EndpointState,
    LeaveReason,
    EndpointKind,
    capabilities_of,
    check_display_name,
    missing_capability,
    new_server_call_id,
    within_capabilities,
)
from .changes import CallChange, CallChangeListener
from .store import CallsStore
from ..core.clock import Clock
from ..core.errors import (
    AlreadyInCall,
    CallFull,
    GatewayUnavailable,
    InsufficientScope,
    InvalidRequest,
    NoActiveCall,
    NoCallYet,
    NotInCall,
    NotInvited,
    ParticipantNotFound,
    RoomExpired,
    RoomNotFound,
    RoomNotOpenYet,
)
from ..core.identifiers import PHONE_RAW_ID_PREFIX, is_acs_user, is_e164, phone_raw_id
from .pstn import DialOutcome, PstnLines, PstnNetwork, leg_reference
from ..rooms.changes import RoomChanges, StagedWrites
from ..rooms.model import Role, Validity
from ..rooms.service import RoomsService
from ..rooms.store import RoomRecord
from ..storage.retry import ConflictRetry

log = logging.getLogger("anteroom.pstn")
CALL_WRITES = ConflictRetry(attempts=200, first_pause=0.002, max_pause=0.05)  # fifty simultaneous joins all get through
CALL_SCOPES = ("voip", "voip.join")

# What a participant may do to itself, and the capability each action needs (None: always allowed).
# Turning one's own microphone, video or sharing off needs none: no role may be refused that.
SELF_ACTIONS: dict[str, Capability | None] = {
    "leave": None,
    "muteMic": None,
    "unmuteMic": Capability.UNMUTE_MIC,
    "startVideo": Capability.TURN_VIDEO_ON,
    "stopVideo": None,
    "startScreenShare": Capability.SHARE_SCREEN,
    "stopScreenShare": None,
}
REMOTE_ACTIONS: dict[str, Capability] = {"mute": Capability.MUTE_OTHERS, "remove": Capability.REMOVE_PARTICIPANT}
# What bringing someone into the call needs: ringing a roster user, dialling a phone.
INVITE_CAPABILITY = Capability.ADD_COMMUNICATION_USER
DIAL_OUT_CAPABILITY = Capability.ADD_PHONE_NUMBER
_FLAG_CHANGES = {
    "muteMic": {"muted": True},
    "unmuteMic": {"muted": False},
    "startVideo": {"video_on": True},
    "stopVideo": {"video_on": False},
    "startScreenShare": {"screen_sharing": True},
    "stopScreenShare": {"screen_sharing": False},
}


@dataclass(frozen=True)
class Caller:
    """Who acts: a roster user with their live role, or a phone endpoint (no role)."""

    raw_id: str
    role: Role | None
    is_phone: bool = False


@dataclass(frozen=True)
class DialOut:
    outcome: DialOutcome
    participant: CallParticipant | None


class CallsService:
    def __init__(
        self,
        rooms: RoomsService,
        store: CallsStore,
        clock: Clock,
        pstn: PstnNetwork | None,
        lines: PstnLines,
        caller_numbers: tuple[str, ...],
        listeners: Sequence[CallChangeListener] = (),
        room_changes: RoomChanges | None = None,
    ) -> None:
        # What every committed change owes the world (events, callbacks, attendance), in this order.
        self._listeners = tuple(listeners)
        self._rooms = rooms
        self._store = store
        self._clock = clock
        self._pstn = pstn
        self._lines = lines
        self._caller_numbers = caller_numbers
        if room_changes is not None:
            room_changes.subscribe(self)  # roster removals and deletions reach live calls at once

    # -- the room and the caller -----------------------------------------------------------
    def settle_validity(self, record: RoomRecord) -> Validity:
        """Where the room stands in its validity window now. A call still running in a room whose
        window is over ends here: every access comes through, so the first one ends it, not only
        the sweep."""
        validity = record.room.validity_at(self._clock())
        if validity is Validity.EXPIRED:
            self.end_call(record.room.id, EndReason.ROOM_EXPIRED)
        return validity

    def _open_room(self, room_id: str) -> RoomRecord:
        """The room, if joinable now; raises RoomNotOpenYet or RoomExpired outside its window."""
        record = self._rooms.get(room_id)
        validity = self.settle_validity(record)
        if validity is Validity.NOT_YET_OPEN:
            raise RoomNotOpenYet(record.room.valid_from)
        if validity is Validity.EXPIRED:
            raise RoomExpired(record.room.valid_until)
        return record

    def _invited(
        self, record: RoomRecord, raw_id: str, roster: dict[str, Role] | None = None,
        refusal: str = "The user is not invited to this room.",
    ) -> Caller:
        """`raw_id` with its live role (from `roster` when already read); raises NotInvited, saying
        `refusal`, when they are not on the room's roster."""
        role = roster.get(raw_id) if roster is not None else self._rooms.role_of_in(record, raw_id)
        if role is None:
            raise NotInvited(raw_id, refusal)
        return Caller(raw_id, role)

    @staticmethod
    def _require(caller: Caller, capability: Capability | None, record: RoomRecord) -> None:
        if capability is None:
            return
        if capability not in capabilities_of(caller.role, record.room.pstn_dial_out_enabled):
            raise missing_capability(capability, caller.role, record.room.id, record.room.pstn_dial_out_enabled)

    def _active_call(self, room_id: str) -> Call:
        call = self._store.current(room_id)
        if call is None or not call.active:
            raise NoActiveCall()
        return call

    @staticmethod
    def _endpoint(call: Call, caller: Caller) -> CallParticipant:
        endpoint = call.connected_endpoint_of(caller.raw_id)
        if endpoint is None:
            raise NotInCall(caller.raw_id)
        return endpoint

    # -- membership changes, serialised on the call entity (also Call Automation's) ----------
    def change(
        self, room_id: str, mutate: Callable[[Call | None], tuple[Call, list[CallParticipant], object] | None],
        as_read: Call | None = None, *, room: Callable[[int], RoomRecord] | None = None,
    ):
        """Read the call, let `mutate` decide, commit with If-Match (with the listeners' entities:
        the change's events and callbacks); retry when someone else won; then tell the listeners.

        `as_read` is the call as the caller just read it: the first attempt starts from it instead of
        reading again (the If-Match still catches any change since; a retry reads afresh).
        `room(attempt)` gives the room (and roster) the decision rests on, read again on every
        attempt: the commit then also requires the room entity unchanged since, so a roster change
        or deletion committed meanwhile makes this attempt retry on the new roster.
        """
        def attempt(number: int):
            guarding = room(number) if room is not None else None
            before = as_read if number == 0 and as_read is not None else self._store.current(room_id)
            decision = mutate(before)
            if decision is None:
                return None
            after, changed, result = decision
            call_change = CallChange(room_id, before, after, changed)
            staged = [(listener, listener.entities(call_change)) for listener in self._listeners]
            committed = self._store.commit(before, after, changed, [e for _, rows in staged for e in rows],
                                           room_etag=guarding.etag if guarding is not None else None)
            for listener, rows in staged:
                listener.committed(call_change, rows)
            return committed, result

        return CALL_WRITES.run(attempt, "The call is changing too fast; retry later.")

    # -- departures and lines (also used by Call Automation) ---------------------------------
    def disconnect(self, call: Call, leaving: list[CallParticipant], reason: LeaveReason) -> tuple[Call, list[CallParticipant]]:
        """Take endpoints off the call; when the last connected one goes, the call ends."""
        now = self._clock()
        gone = [replace(p, state=EndpointState.DISCONNECTED, left_at=now, leave_reason=reason, screen_sharing=False) for p in leaving]
        connected = call.connected - sum(1 for p in leaving if p.connected)
        after = replace(call, connected=connected, sequence=call.sequence + 1)
        if connected <= 0:
            # Invitations still ringing end with the call.
            gone += [
                replace(p, state=EndpointState.DISCONNECTED, left_at=now, leave_reason=LeaveReason.CALL_ENDED)
                for p in call.participants
                if p.state == EndpointState.RINGING and p not in leaving
            ]
            after = replace(after, state=CallState.ENDED, connected=0, ended_at=now, end_reason=EndReason.LAST_PARTICIPANT_LEFT)
        return after, gone

    def release_lines(self, room_id: str, endpoints: list[CallParticipant]) -> None:
        for endpoint in endpoints:
            if endpoint.kind is EndpointKind.PHONE and endpoint.source_number:
                self._lines.release(endpoint.source_number, leg_reference(room_id, endpoint.participant_id))

    # -- use cases ---------------------------------------------------------------------------
    def current_call(self, room_id: str) -> Call | None:
        """The room's current or last call as stored (no access checks: for servers and tests)."""
        return self._store.current(room_id)

    def check_token_scopes(self, scopes: tuple[str, ...]) -> None:
        if not set(scopes) & set(CALL_SCOPES):
            raise InsufficientScope(CALL_SCOPES)

    def join(
        self, room_id: str, user_id: str, display_name: object = None
    ) -> tuple[Call, CallParticipant, Caller, RoomRecord]:
        """Join (or start) the room's call. Only roster users, only inside the validity window.

        `display_name` (optional) must pass `check_display_name`; joining again keeps the first one.

        The join commits only if the room is unchanged since its roster was read (see `change`): a
        removal from the roster racing the join either sees the user in the call and drops them, or
        makes the join read the roster again and refuse.
        """
        display_name = check_display_name(display_name)
        now = self._clock()
        checked: list[tuple[RoomRecord, Caller]] = []

        def invited_room(attempt: int) -> RoomRecord:
            record = self._open_room(room_id)
            checked.append((record, self._invited(record, user_id)))
            return record

        def mutate(call: Call | None):
            record, caller = checked[-1]
            # A role without a capability joins with that media off (a Consumer joins muted).
            granted = capabilities_of(caller.role, record.room.pstn_dial_out_enabled)
            if call is not None and call.active:
                existing = call.connected_endpoint_of(user_id)
                if existing is not None:
                    return None  # already in: joining again is a no-op
                if call.connected >= MAX_CALL_PARTICIPANTS:
                    raise CallFull(MAX_CALL_PARTICIPANTS)
                invited = next((p for p in call.participants if p.raw_id == user_id and p.state == EndpointState.RINGING), None)
                endpoint = within_capabilities(replace(
                    invited, state=EndpointState.CONNECTED, joined_at=now, joined_role=caller.role, display_name=display_name
                ) if invited else CallParticipant(
                    str(uuid.uuid4()), user_id, EndpointKind.VOIP, EndpointState.CONNECTED, now, joined_role=caller.role,
                    display_name=display_name,
                ), granted)
                after = replace(call, connected=call.connected + 1, sequence=call.sequence + 1)
                return after, [endpoint], endpoint
            endpoint = within_capabilities(CallParticipant(
                str(uuid.uuid4()), user_id, EndpointKind.VOIP, EndpointState.CONNECTED, now, joined_role=caller.role,
                display_name=display_name,
            ), granted)
            started = Call(
                room_id=room_id,
                server_call_id=new_server_call_id(),
                state=CallState.ACTIVE,
                started_at=now,
                started_by=user_id,
                connected=1,
                sequence=(call.sequence + 1) if call else 1,
                correlation_id=str(uuid.uuid4()),
            )
            return started, [endpoint], endpoint

        outcome = self.change(room_id, mutate, room=invited_room)
        record, caller = checked[-1]
        if outcome is None:  # already in the call: answer with it as stored
            call = self._store.current(room_id)
            return call, call.connected_endpoint_of(user_id), caller, record
        committed, endpoint = outcome
        # The committed call plus the new endpoint is the stored call: no need to read it back.
        others = tuple(p for p in committed.participants if p.participant_id != endpoint.participant_id)
        return replace(committed, participants=others + (endpoint,)), endpoint, caller, record

    def view(self, room_id: str, user_id: str) -> tuple[Call, dict[str, Role], RoomRecord]:
        """The room's current or last call as a roster user sees it, with every endpoint's live role.

        A deleted room's last call stays readable (ended, `roomDeleted`) by those on its roster at
        the deletion, until the sweep purges the room. Raises NoCallYet for a live room that never
        had a call, RoomNotFound for a deleted one.
        """
        record = self._rooms.get_even_deleted(room_id)
        if record.deleted:
            self.end_call(room_id, EndReason.ROOM_DELETED)  # already ended, unless the deletion's own end was lost
        else:
            self.settle_validity(record)
        roster = self._rooms.roster_of(record)
        self._invited(record, user_id, roster)
        call = self._store.current(room_id)
        if call is None:
            raise RoomNotFound(room_id) if record.deleted else NoCallYet(room_id)
        return call, roster, record

    def act_self(self, room_id: str, caller_id: str, action: str, *, phone: bool = False) -> CallParticipant:
        """One of SELF_ACTIONS by a user (role from the roster now) or by a phone endpoint."""
        if action not in SELF_ACTIONS:
            raise InvalidRequest(f"Unknown action {action!r}. Known actions: {', '.join(SELF_ACTIONS)}.")
        record = self._open_room(room_id)
        if phone:
            caller = Caller(caller_id, None, is_phone=True)
        else:
            try:
                caller = self._invited(record, caller_id, refusal="The user is no longer invited to this room.")
            except NotInvited:
                self.drop_users(room_id, {caller_id}, LeaveReason.REMOVED_FROM_ROOM)  # off the roster: off the call too
                raise
        call = self._active_call(room_id)
        endpoint = self._endpoint(call, caller)
        capability = SELF_ACTIONS[action]
        self._require(caller, capability, record)
        if action == "leave":
            return self._leave(room_id, endpoint.participant_id, LeaveReason.PHONE_HUNG_UP if phone else LeaveReason.HUNG_UP, call)
        guard = None
        if capability is not None and not phone:
            def guard(attempt: int) -> RoomRecord:
                """Turning something on commits only while the room is as read, with the role it
                rests on: a role change committed meanwhile makes it check the new role."""
                current = record if attempt == 0 else self._open_room(room_id)
                again = self._invited(current, caller_id, refusal="The user is no longer invited to this room.")
                self._require(again, capability, current)
                return current
        return self._set_flags(room_id, endpoint.participant_id, _FLAG_CHANGES[action], guard)

    def act_on(self, room_id: str, user_id: str, participant_id: str, action: str) -> CallParticipant:
        """Mute or remove another endpoint (Presenter only, per the role table)."""
        if action not in REMOTE_ACTIONS:
            raise InvalidRequest(f"Unknown action {action!r}. Known actions: {', '.join(REMOTE_ACTIONS)}.")
        record = self._open_room(room_id)
        caller = self._invited(record, user_id)
        call = self._active_call(room_id)
        self._endpoint(call, caller)
        self._require(caller, REMOTE_ACTIONS[action], record)
        target = call.participant(participant_id)
        if target is None or target.state == EndpointState.DISCONNECTED:
            raise ParticipantNotFound()
        if action == "mute":
            return self._set_flags(room_id, participant_id, {"muted": True})
        return self._leave(room_id, participant_id, LeaveReason.REMOVED_BY_PARTICIPANT, call)

    def _set_flags(
        self, room_id: str, participant_id: str, flags: dict, guard: Callable[[int], RoomRecord] | None = None
    ) -> CallParticipant:
        """Set an endpoint's media flags; with `guard(attempt)`, only while the room it gives is unchanged."""
        def attempt(number: int) -> CallParticipant:
            guarding = guard(number) if guard is not None else None
            call = self._active_call(room_id)
            endpoint = call.participant(participant_id)
            if endpoint is None or not endpoint.connected:
                raise ParticipantNotFound()
            if "muted" in flags and flags["muted"] != endpoint.muted and any(c.connected for c in call.connections):
                return self._set_mute_seen_by_applications(room_id, participant_id, flags, call, guard)
            return self._store.update_endpoint(room_id, call.server_call_id, replace(endpoint, **flags),
                                               room_etag=guarding.etag if guarding is not None else None)

        return CALL_WRITES.run(attempt, "The participant is changing too fast; retry later.")

    def _set_mute_seen_by_applications(self, room_id: str, participant_id: str, flags: dict,
                                       as_read: Call, guard: Callable[[int], RoomRecord] | None) -> CallParticipant:
        """A mute change as a call change (next sequence number), so connected Call Automation
        applications get ParticipantsUpdated as ACS sends them; without any, the endpoint row alone
        changes and the call row is not contended."""
        def mutate(call: Call | None):
            endpoint = call.participant(participant_id) if call is not None and call.active else None
            if endpoint is None or not endpoint.connected:
                raise ParticipantNotFound()
            updated = replace(endpoint, **flags)
            return replace(call, sequence=call.sequence + 1), [updated], updated

        return self.change(room_id, mutate, as_read, room=guard)[1]

    def _leave(self, room_id: str, participant_id: str, reason: LeaveReason, as_read: Call | None = None) -> CallParticipant:
        def mutate(call: Call | None):
            if call is None or not call.active:
                return None
            endpoint = call.participant(participant_id)
            if endpoint is None or endpoint.state == EndpointState.DISCONNECTED:
                return None
            after, gone = self.disconnect(call, [endpoint], reason)
            return after, gone, gone[0]

        outcome = self.change(room_id, mutate, as_read)
        if outcome is None:
            raise ParticipantNotFound()
        self.release_lines(room_id, [outcome[1]])
        return outcome[1]

    def invite(self, room_id: str, user_id: str, raw_id: str) -> CallParticipant:
        """Ring a roster user into the call (addCommunicationUser); they join with their own token."""
        if not is_acs_user(raw_id):
            raise InvalidRequest(f"Communication identifier {raw_id} is not supported.")
        record = self._open_room(room_id)
        caller = self._invited(record, user_id)
        call = self._active_call(room_id)
        self._endpoint(call, caller)
        self._require(caller, INVITE_CAPABILITY, record)
        return self.ring_user(room_id, record, raw_id, as_read=call)

    def ring_user(
        self, room_id: str, record: RoomRecord, raw_id: str,
        automation: AutomationContext | None = None, invitation_id: str | None = None, as_read: Call | None = None,
    ) -> CallParticipant:
        """Ring a roster user into the active call (no caller check: callers check first).

        `as_read`: the call as the caller just read it, as for `change`.
        """
        self._invited(record, raw_id, refusal="Only users on the room's roster can be invited into its call.")

        def mutate(call: Call | None):
            if call is None or not call.active:
                raise NoActiveCall()
            if any(p.raw_id == raw_id and p.state != EndpointState.DISCONNECTED for p in call.participants):
                raise AlreadyInCall(raw_id)
            ringing = CallParticipant(
                invitation_id or str(uuid.uuid4()), raw_id, EndpointKind.VOIP, EndpointState.RINGING, None, automation=automation
            )
            return replace(call, sequence=call.sequence + 1), [ringing], ringing

        return self.change(room_id, mutate, as_read)[1]

    def dial_out(self, room_id: str, user_id: str, phone_number: str, caller_id_number: str) -> DialOut:
        """A Presenter dials a phone into the call (the room must allow PSTN dial-out)."""
        record = self._open_room(room_id)
        caller = self._invited(record, user_id)
        self._endpoint(self._active_call(room_id), caller)
        self._require(caller, DIAL_OUT_CAPABILITY, record)
        return self.place_phone_call(room_id, phone_number, caller_id_number)

    def place_phone_call(self, room_id: str, phone_number: str, caller_id_number: str) -> DialOut:
        """Dial a phone into the room's active call and wait for the outcome (no role check: callers check first)."""
        participant_id = self.reserve_phone_line(room_id, phone_number, caller_id_number)
        reference = leg_reference(room_id, participant_id)
        try:
            outcome = self._pstn.place_call(caller_id_number, phone_number, reference)
            if outcome is not DialOutcome.ANSWERED:
                self._lines.release(caller_id_number, reference)
                return DialOut(outcome, None)
            now = self._clock()

            def mutate(call: Call | None):
                if call is None or not call.active:
                    raise NoActiveCall("The call ended while the phone was ringing.")
                phone = CallParticipant(
                    participant_id, phone_raw_id(phone_number), EndpointKind.PHONE, EndpointState.CONNECTED, now,
                    source_number=caller_id_number,
                )
                return replace(call, connected=call.connected + 1, sequence=call.sequence + 1), [phone], phone

            try:
                return DialOut(outcome, self.change(room_id, mutate)[1])
            except NoActiveCall:
                self._hang_up_unused_leg(reference)
                raise
        except Exception:
            self._lines.release(caller_id_number, reference)
            raise

    def reserve_phone_line(
        self, room_id: str, phone_number: str, caller_id_number: str, participant_id: str | None = None
    ) -> str:
        """Check a dial-out and take a line of the caller number; answers the new endpoint's id.

        Raises InvalidRequest for a number that is not E.164 or a caller number that is not the
        resource's, ConcurrentCallLimitReached when the caller number's lines are all busy,
        GatewayUnavailable without a PSTN gateway.
        """
        if not is_e164(phone_number):
            raise InvalidRequest("The phone number must be in E.164 format (+ and up to 15 digits).", target="phoneNumber")
        if not is_e164(caller_id_number) or caller_id_number not in self._caller_numbers:
            raise InvalidRequest(
                "The caller id number must be one of this resource's phone numbers.", target="callerIdNumber"
            )
        if self._pstn is None:
            raise GatewayUnavailable("No PSTN gateway is configured (ANTEROOM_PSTN_GATEWAY_URL).")
        participant_id = participant_id or str(uuid.uuid4())
        self._lines.acquire(caller_id_number, leg_reference(room_id, participant_id))
        return participant_id

    def ring_phone(self, room_id: str, ringing: CallParticipant) -> None:
        """Place a ringing phone endpoint's call through the gateway and settle the endpoint.

        Answered: it joins the call (unless the invitation was cancelled or the call ended in the
        meantime). Otherwise it ends with the outcome as its reason and its line is released.
        """
        reference = leg_reference(room_id, ringing.participant_id)
        try:
            outcome = self._pstn.place_call(ringing.source_number, ringing.raw_id.removeprefix(PHONE_RAW_ID_PREFIX), reference)
            reason = None if outcome is DialOutcome.ANSWERED else LeaveReason(outcome.value)
        except GatewayUnavailable:
            reason = LeaveReason.GATEWAY_FAILED
        now = self._clock()

        def mutate(call: Call | None):
            endpoint = call.participant(ringing.participant_id) if call is not None and call.active else None
            if endpoint is None or endpoint.state != EndpointState.RINGING:
                return None  # cancelled, or the call ended: nothing left to settle
            if reason is None:
                joined = replace(endpoint, state=EndpointState.CONNECTED, joined_at=now)
                return replace(call, connected=call.connected + 1, sequence=call.sequence + 1), [joined], joined
            failed = replace(endpoint, state=EndpointState.DISCONNECTED, left_at=now, leave_reason=reason)
            return replace(call, sequence=call.sequence + 1), [failed], failed

        settled = self.change(room_id, mutate)
        if settled is None or not settled[1].connected:
            self._lines.release(ringing.source_number, reference)
        if settled is None and reason is None:
            self._hang_up_unused_leg(reference)  # answered, but cancelled or the call ended meanwhile

    def _hang_up_unused_leg(self, reference: str) -> None:
        """A phone answered after its place in the call was gone: no call change ends it, so it is hung
        up here, once (the change path's hang-ups are retried through the outbox)."""
        try:
            self._pstn.hang_up(reference)
        except GatewayUnavailable as error:
            log.error("the phone leg %s answered after its call ended and could not be hung up; the PSTN "
                      "gateway may still have it up: %s", reference, error)

    def phone_event(self, reference: str, action: str) -> CallParticipant:
        """An event from the phone side (the PSTN network): `reference` is `<roomId>|<participantId>`."""
        room_id, _, participant_id = reference.partition("|")
        call = self._active_call(room_id)
        endpoint = call.participant(participant_id)
        if endpoint is None or endpoint.kind is not EndpointKind.PHONE or not endpoint.connected:
            raise ParticipantNotFound("The phone participant is not in the call.")
        return self.act_self(room_id, endpoint.raw_id, action, phone=True)

    # -- consequences of room changes, and the sweep ------------------------------------------
    def end_call(self, room_id: str, reason: EndReason, as_read: Call | None = None) -> Call | None:
        """End the room's active call for everyone (validity over, room deleted, hang up for all).

        `as_read`: the call as the caller just read it, as for `change`.
        """
        def mutate(call: Call | None):
            if call is None or not call.active:
                return None
            leaving = [p for p in call.participants if p.state != EndpointState.DISCONNECTED]
            after, gone = self.disconnect(call, leaving, LeaveReason(reason.value))
            after = replace(after, end_reason=reason)
            return after, gone, gone

        outcome = self.change(room_id, mutate, as_read)
        if outcome is None:
            return None
        self.release_lines(room_id, outcome[1])
        return outcome[0]

    def drop_users(self, room_id: str, raw_ids: set[str], reason: LeaveReason) -> None:
        """Take users off the call at once when they leave the roster."""
        def mutate(call: Call | None):
            if call is None or not call.active:
                return None
            leaving = [p for p in call.participants if p.raw_id in raw_ids and p.state != EndpointState.DISCONNECTED]
            if not leaving:
                return None
            after, gone = self.disconnect(call, leaving, reason)
            return after, gone, gone

        self.change(room_id, mutate)

    def roster_changing(self, record: RoomRecord, old: dict[str, Role], new: dict[str, Role]) -> StagedWrites:
        """RoomObserver: a role change turns off, in the roster change's own transaction, the media
        state the new role has no capability for (a Collaborator made Attendee stops sharing, an
        Attendee made Consumer is muted with video off), with the events and callbacks it owes."""
        if not any(raw_id in old and old[raw_id] != role for raw_id, role in new.items()):
            return StagedWrites()  # no one's role changed (users added or removed only): no call to read
        call = self._store.current(record.room.id)
        if call is None or not call.active:
            return StagedWrites()
        changed = []
        for endpoint in call.participants:
            role = new.get(endpoint.raw_id)
            if endpoint.kind is not EndpointKind.VOIP or not endpoint.connected or role is None or role == old.get(endpoint.raw_id):
                continue
            allowed = within_capabilities(endpoint, capabilities_of(role, record.room.pstn_dial_out_enabled))
            if allowed != endpoint:
                changed.append(allowed)
        if not changed:
            return StagedWrites()
        after = replace(call, sequence=call.sequence + 1)
        call_change = CallChange(record.room.id, call, after, changed)
        staged = [(listener, listener.entities(call_change)) for listener in self._listeners]
        operations = self._store.staged_commit(call, after, changed, [e for _, rows in staged for e in rows])

        def committed() -> None:
            for listener, rows in staged:
                listener.committed(call_change, rows)

        return StagedWrites(tuple(operations), committed)

    def room_deleted(self, room_id: str) -> None:
        """RoomObserver: the room is gone, so is its call."""
        self.end_call(room_id, EndReason.ROOM_DELETED)

    def users_removed(self, room_id: str, raw_ids: set[str]) -> None:
        """RoomObserver: users off the roster are off the call."""
        self.drop_users(room_id, raw_ids, LeaveReason.REMOVED_FROM_ROOM)

    def sweep(self) -> int:
        """End calls whose room expired or was deleted; returns how many ended."""
        ended = 0
        for room_id in self._store.active_call_rooms():
            record = self._rooms.find(room_id)
            if record is None:
                ended += self.end_call(room_id, EndReason.ROOM_DELETED) is not None
            elif self.settle_validity(record) is Validity.EXPIRED:
                ended += 1
        return ended
