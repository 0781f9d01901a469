"""Room-call domain: capabilities per role (ACS's role table as data), call and participant models."""
from __future__ import annotations

import enum
import unicodedata
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

from ..core.errors import DialOutDisabled, InvalidRequest, MissingCapability
from ..core.identifiers import OPAQUE_ID_PATTERN, PHONE_RAW_ID_PREFIX, opaque_id
from ..rooms.model import Role
from ..core.timefmt import format_acs

MAX_CALL_PARTICIPANTS = 350  # ACS's interactive participant limit for a room call
# ACS's UI library (AzureCommunicationCallAdapterArgs): "displayName can have a maximum of 256 characters".
MAX_DISPLAY_NAME_LENGTH = 256
# Characters that reorder or hide text: a name carrying them could show as someone else's.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class Capability(str, enum.Enum):
    """In-call capabilities, named as the ACS Calling SDK's capabilities feature names them."""

    UNMUTE_MIC = "unmuteMic"  # mute and unmute one's own microphone
    TURN_VIDEO_ON = "turnVideoOn"  # turn one's own video on and off
    SHARE_SCREEN = "shareScreen"
    MUTE_OTHERS = "muteOthers"
    REMOVE_PARTICIPANT = "removeParticipant"
    ADD_COMMUNICATION_USER = "addCommunicationUser"  # invite a roster user into the call
    ADD_PHONE_NUMBER = "addPhoneNumber"  # dial out to PSTN (also needs the room's pstnDialOutEnabled)


_ATTENDEE = frozenset({Capability.UNMUTE_MIC, Capability.TURN_VIDEO_ON})
ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.PRESENTER: frozenset(Capability),
    Role.ATTENDEE: _ATTENDEE,
    Role.COLLABORATOR: _ATTENDEE | {Capability.SHARE_SCREEN},
    Role.CONSUMER: frozenset(),
}
# A phone participant has no role; all it may do is mute and unmute itself.
PHONE_CAPABILITIES = frozenset({Capability.UNMUTE_MIC})


def capabilities_of(role: Role | None, pstn_dial_out_enabled: bool) -> frozenset[Capability]:
    """What a participant may do now: its role's row of the table, less dial-out where the room forbids it."""
    granted = PHONE_CAPABILITIES if role is None else ROLE_CAPABILITIES[role]
    if not pstn_dial_out_enabled:
        granted = granted - {Capability.ADD_PHONE_NUMBER}
    return granted


def within_capabilities(endpoint: "CallParticipant", granted: frozenset[Capability]) -> "CallParticipant":
    """The endpoint with every media state `granted` does not cover turned off: the microphone muted
    without unmuteMic, video off without turnVideoOn, sharing off without shareScreen."""
    return replace(
        endpoint,
        muted=endpoint.muted or Capability.UNMUTE_MIC not in granted,
        video_on=endpoint.video_on and Capability.TURN_VIDEO_ON in granted,
        screen_sharing=endpoint.screen_sharing and Capability.SHARE_SCREEN in granted,
    )


def missing_capability(
    capability: Capability, role: Role | None, room_id: str, pstn_dial_out_enabled: bool
) -> MissingCapability | DialOutDisabled:
    """Why the caller may not use `capability`: its role lacks it, or (for a Presenter) the room forbids dial-out."""
    if capability is Capability.ADD_PHONE_NUMBER and role is Role.PRESENTER and not pstn_dial_out_enabled:
        return DialOutDisabled(room_id)
    return MissingCapability(capability.value, role.value if role else None)


def check_display_name(value: object) -> str | None:
    """The display name a user joins with (optional); raises InvalidRequest unless it is a string of
    1 to 256 characters that is not only spaces and has no control or bidirectional-control characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("displayName must be a non-empty string.", target="displayName")
    if len(value) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidRequest(
            f"displayName can have at most {MAX_DISPLAY_NAME_LENGTH} characters; it has {len(value)}.",
            target="displayName",
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI_CONTROLS for ch in value):
        raise InvalidRequest("displayName must not contain control characters.", target="displayName")
    return value


class EndpointKind(str, enum.Enum):
    VOIP = "communicationUser"
    PHONE = "phoneNumber"


class CallState(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class EndpointState(enum.StrEnum):
    CONNECTED = "connected"
    RINGING = "ringing"  # invited (or dialled), not yet joined
    DISCONNECTED = "disconnected"


class ConnectionState(enum.StrEnum):
    """Of ACS's CallConnectionStateModel, the states a Call Automation connection here reaches."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # it hung up, or the call ended


class EndReason(enum.StrEnum):
    """Why a call ended."""

    LAST_PARTICIPANT_LEFT = "lastParticipantLeft"
    ROOM_EXPIRED = "roomExpired"
    ROOM_DELETED = "roomDeleted"
    HUNG_UP_FOR_EVERYONE = "hungUpForEveryone"  # Call Automation's terminate


class LeaveReason(enum.StrEnum):
    """Why an endpoint left the call, or why an invitation ended without joining it."""

    HUNG_UP = "hungUp"
    PHONE_HUNG_UP = "phoneHungUp"
    REMOVED_BY_PARTICIPANT = "removedByParticipant"
    REMOVED_BY_SERVER = "removedByServer"  # by Call Automation
    REMOVED_FROM_ROOM = "removedFromRoom"
    CALL_ENDED = "callEnded"  # still ringing when the last connected endpoint left
    ROOM_EXPIRED = EndReason.ROOM_EXPIRED.value
    ROOM_DELETED = EndReason.ROOM_DELETED.value
    HUNG_UP_FOR_EVERYONE = EndReason.HUNG_UP_FOR_EVERYONE.value
    # How a ringing invitation ended: the dial outcomes other than answered, a cancel, a gateway failure.
    DECLINED = "declined"
    BUSY = "busy"
    NO_ANSWER = "noAnswer"
    CANCELLED = "cancelled"
    GATEWAY_FAILED = "gatewayFailed"


SERVER_CALL_ID_PATTERN = OPAQUE_ID_PATTERN


def new_server_call_id() -> str:
    # ACS serverCallIds are opaque base64 strings; ours encode a random locator.
    return opaque_id(f"anteroom:call:{uuid.uuid4()}")


@dataclass(frozen=True)
class AutomationContext:
    """Which Call Automation connection asked for an endpoint's last change, and where to report it."""

    call_connection_id: str
    callback_uri: str
    operation_context: str | None = None
    expires_at: datetime | None = None  # an invitation still ringing then has gone unanswered

    def to_json(self) -> dict:
        body = {"id": self.call_connection_id, "uri": self.callback_uri, "context": self.operation_context}
        if self.expires_at is not None:
            body["expires"] = self.expires_at.isoformat()
        return body

    @classmethod
    def from_json(cls, body: dict) -> "AutomationContext":
        expires = datetime.fromisoformat(body["expires"]) if body.get("expires") else None
        return cls(body["id"], body["uri"], body.get("context"), expires)


@dataclass(frozen=True)
class CallConnection:
    """A server application connected to the call through Call Automation (not an endpoint of it)."""

    call_connection_id: str
    callback_uri: str
    connected_at: datetime
    operation_context: str | None = None
    state: ConnectionState = ConnectionState.CONNECTED

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", ConnectionState(self.state))

    @property
    def connected(self) -> bool:
        return self.state == ConnectionState.CONNECTED

    def to_json(self) -> dict:
        return {
            "id": self.call_connection_id, "uri": self.callback_uri, "at": self.connected_at.isoformat(),
            "context": self.operation_context, "state": self.state,
        }

    @classmethod
    def from_json(cls, body: dict) -> "CallConnection":
        return cls(body["id"], body["uri"], datetime.fromisoformat(body["at"]), body.get("context"), body["state"])


@dataclass(frozen=True)
class CallParticipant:
    participant_id: str
    raw_id: str
    kind: EndpointKind
    state: EndpointState
    joined_at: datetime | None
    muted: bool = False
    video_on: bool = False
    screen_sharing: bool = False
    left_at: datetime | None = None
    leave_reason: LeaveReason | None = None
    source_number: str | None = None
    joined_role: Role | None = None  # the role when it joined: events name it even after a roster change
    automation: AutomationContext | None = None  # the Call Automation operation that last acted on it
    display_name: str | None = None  # as the user joined with it (users only)
    etag: str = ""

    def __post_init__(self) -> None:
        # A state or reason outside the enums (which the API document lists) fails where it is made.
        object.__setattr__(self, "state", EndpointState(self.state))
        if self.leave_reason is not None:
            object.__setattr__(self, "leave_reason", LeaveReason(self.leave_reason))

    @property
    def connected(self) -> bool:
        return self.state == EndpointState.CONNECTED

    def to_json(self, role: Role | None) -> dict:
        body = {
            "participantId": self.participant_id,
            "identifier": identifier_json(self.raw_id, self.kind),
            "role": role.value if role else None,
            "state": self.state,
            "isMuted": self.muted,
            "isVideoOn": self.video_on,
            "isScreenSharing": self.screen_sharing,
        }
        if self.display_name is not None:
            body["displayName"] = self.display_name
        if self.joined_at:
            body["joinedAt"] = format_acs(self.joined_at)
        if self.left_at:
            body["leftAt"] = format_acs(self.left_at)
            body["leaveReason"] = self.leave_reason
        return body


@dataclass(frozen=True)
class Call:
    room_id: str
    server_call_id: str
    state: CallState
    started_at: datetime
    started_by: str
    connected: int
    sequence: int
    correlation_id: str
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    etag: str = ""
    participants: tuple[CallParticipant, ...] = field(default_factory=tuple)
    connections: tuple[CallConnection, ...] = field(default_factory=tuple)  # Call Automation connections

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", CallState(self.state))
        if self.end_reason is not None:
            object.__setattr__(self, "end_reason", EndReason(self.end_reason))

    @property
    def active(self) -> bool:
        return self.state == CallState.ACTIVE

    def participant(self, participant_id: str) -> CallParticipant | None:
        return next((p for p in self.participants if p.participant_id == participant_id), None)

    def connected_endpoint_of(self, raw_id: str) -> CallParticipant | None:
        return next((p for p in self.participants if p.raw_id == raw_id and p.connected), None)

    def connection(self, call_connection_id: str) -> CallConnection | None:
        return next((c for c in self.connections if c.call_connection_id == call_connection_id), None)


def identifier_json(raw_id: str, kind: EndpointKind) -> dict:
    """A CommunicationIdentifierModel with kind and rawId, as ACS returns identifiers."""
    if kind is EndpointKind.PHONE:
        return {"kind": "phoneNumber", "rawId": raw_id, "phoneNumber": {"value": raw_id.removeprefix(PHONE_RAW_ID_PREFIX)}}
    return {"kind": "communicationUser", "rawId": raw_id, "communicationUser": {"id": raw_id}}
