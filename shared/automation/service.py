"""Call Automation use cases on room calls: connect by room id, add (phone or roster user), remove, mute, hang up.

Every change goes through the room-call code (`CallsService.change`), so it is serialised with
joins and leaves, shows up in the room call and its call events, and its callbacks are written
to the outbox in the same transaction. Server-side operations are not limited by roles.
"""
from __future__ import annotations

import base64
import binascii
import threading
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Callable
from urllib.parse import urlsplit

from .model import connection_properties, visible_participants
from ..calls.model import (
    AutomationContext, Call, CallConnection, CallParticipant, ConnectionState, EndReason, EndpointKind, EndpointState,
    LeaveReason,
)
from ..calls.service import CallsService
from ..calls.store import CallsStore
from ..core.clock import Clock
from ..core.errors import (
    CallConnectionNotFound,
    DialOutDisabled,
    InvalidRequest,
    InvitationNotFound,
    NoActiveCall,
    ParticipantNotFound,
    RoomExpired,
    RoomNotFound,
    TooManyConnections,
)
from ..core.identifiers import OPAQUE_ID_PATTERN, PHONE_RAW_ID_PREFIX, is_acs_user, opaque_id, phone_raw_id
from ..rooms.model import Validity, is_room_id
from ..rooms.service import RoomsService

MAX_CONNECTIONS_PER_CALL = 10  # our limit: connections live on the call entity
KEPT_DISCONNECTED = 10  # hung-up connections kept so a retried hang-up succeeds; older ones are dropped
DEFAULT_INVITATION_TIMEOUT = 60  # seconds an invitation rings when the request names none
MAX_INVITATION_TIMEOUT = 180  # ACS's maximum invitationTimeoutInSeconds
MUTE_TARGETS = 1  # ACS mutes exactly one participant per request


CALL_CONNECTION_ID_PATTERN = OPAQUE_ID_PATTERN


def call_connection_id(room_id: str, unique: str) -> str:
    """The connection id for a room and a UUID: opaque to clients, like ACS's, but it carries the
    room, so no lookup table is needed."""
    return opaque_id(f"{room_id}:{unique}")


def room_of_connection(call_connection_id: str) -> str:
    """The room a call connection id belongs to; CallConnectionNotFound for an id we never issued."""
    try:
        decoded = base64.urlsafe_b64decode(call_connection_id + "=" * (-len(call_connection_id) % 4)).decode()
        room_id, _, connection_uuid = decoded.partition(":")
        uuid.UUID(connection_uuid)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CallConnectionNotFound() from None
    if not is_room_id(room_id):
        raise CallConnectionNotFound()
    return room_id


def parse_identifier(model: object, field: str) -> tuple[str, EndpointKind]:
    """A CommunicationIdentifierModel from a request -> (raw id, kind); phone numbers and ACS users only."""
    if not isinstance(model, dict):
        raise InvalidRequest(f"{field} must be a communication identifier.")
    phone, user, raw_id = model.get("phoneNumber"), model.get("communicationUser"), model.get("rawId")
    if isinstance(phone, dict) and isinstance(phone.get("value"), str):
        return phone_raw_id(phone["value"]), EndpointKind.PHONE
    if isinstance(user, dict) and isinstance(user.get("id"), str):
        return user["id"], EndpointKind.VOIP
    if isinstance(raw_id, str) and raw_id.startswith(PHONE_RAW_ID_PREFIX):
        return raw_id, EndpointKind.PHONE
    if is_acs_user(raw_id):
        return raw_id, EndpointKind.VOIP
    raise InvalidRequest(f"{field} must be a phone number or an Azure Communication Services user.")


def check_callback_uri(uri: object, field: str) -> str:
    parts = urlsplit(uri) if isinstance(uri, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(f"{field} must be an absolute http(s) URI.")
    return uri


def _in_background(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="call-automation-dial", daemon=True).start()


class CallAutomationService:
    def __init__(
        self, rooms: RoomsService, calls: CallsService, store: CallsStore, clock: Clock,
        run_in_background: Callable[[Callable[[], None]], None] = _in_background,
    ) -> None:
        self._rooms = rooms
        self._calls = calls
        self._store = store  # to find the calls with invitations to expire
        self._clock = clock
        self._run_in_background = run_in_background  # the PSTN ring runs after the 202 is answered

    # -- connections -------------------------------------------------------------------------
    def connect(
        self, room_id: str, callback_uri: str, operation_context: str | None, call_connection_id: str
    ) -> dict:
        """Connect to the room's active call; answers CallConnectionProperties (a retry gets the same)."""
        check_callback_uri(callback_uri, "callbackUri")
        record = self._rooms.find(room_id) if is_room_id(room_id) else None
        if record is None:
            raise RoomNotFound(room_id)
        if self._calls.settle_validity(record) is Validity.EXPIRED:
            raise RoomExpired(record.room.valid_until)
        connection = CallConnection(call_connection_id, callback_uri, self._clock(), operation_context)

        def mutate(call: Call | None):
            if call is None or not call.active:
                raise NoActiveCall("The room has no active call to connect to.")
            if call.connection(call_connection_id) is not None:
                return None  # a retry of a connect that committed
            if sum(c.connected for c in call.connections) >= MAX_CONNECTIONS_PER_CALL:
                raise TooManyConnections(MAX_CONNECTIONS_PER_CALL)
            # The entity property holds 64 KiB: only the latest hung-up connections stay.
            hung_up = [c for c in call.connections if not c.connected][-KEPT_DISCONNECTED:]
            kept = tuple(c for c in call.connections if c.connected or c in hung_up)
            return replace(call, sequence=call.sequence + 1, connections=kept + (connection,)), [], connection

        outcome = self._calls.change(room_id, mutate)
        if outcome is None:  # a retry: answer the connection as stored
            return self.properties(call_connection_id)
        # The committed call holds the new connection: no need to read it back.
        return connection_properties(outcome[0], connection)

    def _locate(self, call_connection_id: str, *, active: bool = True) -> tuple[str, Call, CallConnection]:
        room_id = room_of_connection(call_connection_id)
        call = self._calls.current_call(room_id)
        connection = call.connection(call_connection_id) if call is not None else None
        if connection is None or (active and not (call.active and connection.connected)):
            raise CallConnectionNotFound()
        return room_id, call, connection

    def properties(self, call_connection_id: str) -> dict:
        """A live connection's properties; an ended one is not found, as ACS answers after a hang-up."""
        _, call, connection = self._locate(call_connection_id)
        return connection_properties(call, connection)

    def hang_up(self, call_connection_id: str) -> None:
        """This application leaves; the call goes on for everyone else. A repeat is a no-op."""
        room_id, call, connection = self._locate(call_connection_id, active=False)

        def mutate(current: Call | None):
            if current is None or current.server_call_id != call.server_call_id or not current.active:
                return None
            mine = current.connection(call_connection_id)
            if mine is None or not mine.connected:
                return None
            connections = tuple(replace(c, state=ConnectionState.DISCONNECTED) if c is mine else c for c in current.connections)
            return replace(current, sequence=current.sequence + 1, connections=connections), [], None

        self._calls.change(room_id, mutate, call)

    def terminate(self, call_connection_id: str) -> None:
        """End the call for everyone (every connection gets CallDisconnected)."""
        room_id, call, _ = self._locate(call_connection_id)
        self._calls.end_call(room_id, EndReason.HUNG_UP_FOR_EVERYONE, call)

    # -- participants ------------------------------------------------------------------------
    def participants(self, call_connection_id: str) -> list[CallParticipant]:
        _, call, _ = self._locate(call_connection_id)
        return visible_participants(call)

    def participant(self, call_connection_id: str, raw_id: str) -> CallParticipant:
        _, call, _ = self._locate(call_connection_id)
        endpoint = call.connected_endpoint_of(raw_id)
        if endpoint is None:
            raise ParticipantNotFound("Participant not found.")
        return endpoint

    def _context(self, connection: CallConnection, operation_context, callback_override) -> AutomationContext:
        uri = check_callback_uri(callback_override, "operationCallbackUri") if callback_override else connection.callback_uri
        return AutomationContext(connection.call_connection_id, uri, operation_context)

    def add_participant(
        self, call_connection_id: str, target: object, source_caller_id_number: object,
        operation_context: str | None, callback_override: str | None, invitation_id: str,
        timeout_seconds: object = None,
    ) -> CallParticipant:
        """Invite a phone (dialled in the background) or a roster user; answers the ringing endpoint.

        The outcome arrives later as AddParticipantSucceeded or AddParticipantFailed (also when
        nobody answers within `timeout_seconds`). A retry with the same invitation id answers the
        endpoint it created.
        """
        room_id, call, connection = self._locate(call_connection_id)
        existing = call.participant(invitation_id)
        if existing is not None:
            return existing
        raw_id, kind = parse_identifier(target, "participantToAdd")
        if timeout_seconds is None:
            timeout_seconds = DEFAULT_INVITATION_TIMEOUT
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int) or not 0 < timeout_seconds <= MAX_INVITATION_TIMEOUT:
            raise InvalidRequest(f"invitationTimeoutInSeconds must be an integer from 1 to {MAX_INVITATION_TIMEOUT}.")
        automation = replace(
            self._context(connection, operation_context, callback_override),
            expires_at=self._clock() + timedelta(seconds=timeout_seconds),
        )
        record = self._rooms.find(room_id)
        if record is None:
            raise RoomNotFound(room_id)
        if kind is EndpointKind.VOIP:
            return self._calls.ring_user(room_id, record, raw_id, automation, invitation_id, call)
        if not record.room.pstn_dial_out_enabled:
            raise DialOutDisabled(room_id)
        caller = source_caller_id_number.get("value") if isinstance(source_caller_id_number, dict) else None
        if not isinstance(caller, str):
            raise InvalidRequest("sourceCallerIdNumber is required to add a phone number.")
        self._calls.reserve_phone_line(room_id, raw_id.removeprefix(PHONE_RAW_ID_PREFIX), caller, invitation_id)
        ringing = CallParticipant(
            invitation_id, raw_id, EndpointKind.PHONE, EndpointState.RINGING, None, source_number=caller, automation=automation
        )

        def mutate(current: Call | None):
            if current is None or not current.active:
                raise CallConnectionNotFound()
            return replace(current, sequence=current.sequence + 1), [ringing], ringing

        try:
            added = self._calls.change(room_id, mutate, call)[1]
        except Exception:
            self._calls.release_lines(room_id, [ringing])
            raise
        self._run_in_background(lambda: self._calls.ring_phone(room_id, added))
        return added

    def cancel_add(
        self, call_connection_id: str, invitation_id: str, operation_context: str | None, callback_override: str | None
    ) -> None:
        """Stop ringing an invitation; CancelAddParticipantSucceeded follows. InvitationNotFound when it no longer rings."""
        room_id, as_read, connection = self._locate(call_connection_id)
        automation = self._context(connection, operation_context, callback_override)
        now = self._clock()

        def mutate(call: Call | None):
            endpoint = call.participant(invitation_id) if call is not None and call.active else None
            if endpoint is None or endpoint.state != EndpointState.RINGING:
                raise InvitationNotFound(invitation_id)
            cancelled = replace(endpoint, state=EndpointState.DISCONNECTED, left_at=now, leave_reason=LeaveReason.CANCELLED, automation=automation)
            return replace(call, sequence=call.sequence + 1), [cancelled], cancelled

        self._calls.release_lines(room_id, [self._calls.change(room_id, mutate, as_read)[1]])

    def remove_participant(
        self, call_connection_id: str, target: object, operation_context: str | None, callback_override: str | None
    ) -> None:
        room_id, as_read, connection = self._locate(call_connection_id)
        raw_id, _ = parse_identifier(target, "participantToRemove")
        automation = self._context(connection, operation_context, callback_override)

        def mutate(call: Call | None):
            endpoint = call.connected_endpoint_of(raw_id) if call is not None and call.active else None
            if endpoint is None:
                raise ParticipantNotFound("Participant not found.")
            after, gone = self._calls.disconnect(call, [replace(endpoint, automation=automation)], LeaveReason.REMOVED_BY_SERVER)
            return after, gone, gone

        self._calls.release_lines(room_id, self._calls.change(room_id, mutate, as_read)[1])

    def mute(self, call_connection_id: str, targets: object, operation_context: str | None) -> None:
        """Mute one participant (ACS takes exactly one target); ParticipantsUpdated follows."""
        room_id, as_read, connection = self._locate(call_connection_id)
        if not isinstance(targets, list) or len(targets) != MUTE_TARGETS:
            raise InvalidRequest("targetParticipants must name exactly one participant.")
        raw_id, _ = parse_identifier(targets[0], "targetParticipants")
        automation = self._context(connection, operation_context, None)

        def mutate(call: Call | None):
            endpoint = call.connected_endpoint_of(raw_id) if call is not None and call.active else None
            if endpoint is None:
                raise ParticipantNotFound("Participant not found.")
            if endpoint.muted:
                return None
            muted = replace(endpoint, muted=True, automation=automation)
            return replace(call, sequence=call.sequence + 1), [muted], muted

        self._calls.change(room_id, mutate, as_read)

    # -- the sweep ---------------------------------------------------------------------------
    def expire_invitations(self) -> int:
        """End invitations that rang past their timeout (no answer, or a dial lost with its process).

        Each becomes AddParticipantFailed (408/8541) and gives its phone line back; returns how many.
        """
        expired = 0
        now = self._clock()
        for room_id in self._store.active_call_rooms():
            call = self._calls.current_call(room_id)
            due = [
                p.participant_id for p in (call.participants if call is not None else ())
                if p.state == EndpointState.RINGING and p.automation is not None and p.automation.expires_at is not None
                and p.automation.expires_at <= now
            ]
            if due:
                expired += len(self._expire(room_id, set(due), now, call))
        return expired

    def _expire(self, room_id: str, participant_ids: set[str], now, as_read: Call) -> list[CallParticipant]:
        def mutate(call: Call | None):
            if call is None or not call.active:
                return None
            ended = [
                replace(p, state=EndpointState.DISCONNECTED, left_at=now, leave_reason=LeaveReason.NO_ANSWER)
                for p in call.participants if p.participant_id in participant_ids and p.state == EndpointState.RINGING
            ]
            return (replace(call, sequence=call.sequence + 1), ended, ended) if ended else None

        outcome = self._calls.change(room_id, mutate, as_read)
        if outcome is None:
            return []
        self._calls.release_lines(room_id, outcome[1])
        return outcome[1]
