"""Rooms domain: the room model, roles, request parsing and ACS's validity rules."""
from __future__ import annotations

import enum
import random
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from ..core.errors import InvalidArgument, InvalidRequest
from ..core.identifiers import is_acs_user
from ..core.timefmt import format_acs, parse_rfc3339

MAX_VALIDITY = timedelta(days=180)
ROOM_ID_LENGTH = 17
ROOM_ID_PATTERN = f"[0-9]{{{ROOM_ID_LENGTH}}}"  # what a room id may be (ECMA-262 and Python alike)
GENERATED_ROOM_ID_PREFIX = "99"  # what the ids new_room_id makes start with, like ACS's
GENERATED_ROOM_ID_PATTERN = f"{GENERATED_ROOM_ID_PREFIX}[0-9]{{{ROOM_ID_LENGTH - len(GENERATED_ROOM_ID_PREFIX)}}}"
_ROOM_ID = re.compile(ROOM_ID_PATTERN)
_ID_EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)
_ID_TIME_DIGITS = 11
_last_id_lock = threading.Lock()
_last_id = -(10**9)  # the digits after `99` of the last id new_room_id made in this process


class Validity(enum.Enum):
    """Where a moment falls in a room's validity window."""

    NOT_YET_OPEN = "notYetOpen"
    OPEN = "open"
    EXPIRED = "expired"


class Role(str, enum.Enum):
    PRESENTER = "Presenter"
    ATTENDEE = "Attendee"
    CONSUMER = "Consumer"
    COLLABORATOR = "Collaborator"


ROLE_ERROR = "Invalid participant role. The valid roles are: Presenter, Attendee, Consumer, Collaborator."
_ROLES_BY_NAME = {role.value.lower(): role for role in Role}


@dataclass(frozen=True)
class Room:
    """A room as the API shows it. Participants are kept apart (they are not part of RoomModel)."""

    id: str
    created_at: datetime
    valid_from: datetime
    valid_until: datetime
    pstn_dial_out_enabled: bool = False

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "createdAt": format_acs(self.created_at),
            "validFrom": format_acs(self.valid_from),
            "validUntil": format_acs(self.valid_until),
            "pstnDialOutEnabled": self.pstn_dial_out_enabled,
        }

    @property
    def lifespan_minutes(self) -> int:
        return round((self.valid_until - self.valid_from).total_seconds() / 60)

    def validity_at(self, now: datetime) -> Validity:
        """Open from validFrom (inclusive) until validUntil (exclusive)."""
        if now < self.valid_from:
            return Validity.NOT_YET_OPEN
        return Validity.OPEN if now < self.valid_until else Validity.EXPIRED


@dataclass(frozen=True)
class RosterCounts:
    """How many roster entries hold each role (kept with the room for logs and limits)."""

    presenters: int = 0
    attendees: int = 0
    consumers: int = 0
    collaborators: int = 0

    @property
    def total(self) -> int:
        return self.presenters + self.attendees + self.consumers + self.collaborators

    @classmethod
    def of(cls, roles) -> "RosterCounts":
        roles = list(roles)
        return cls(
            presenters=roles.count(Role.PRESENTER),
            attendees=roles.count(Role.ATTENDEE),
            consumers=roles.count(Role.CONSUMER),
            collaborators=roles.count(Role.COLLABORATOR),
        )


def new_room_id(now: datetime, rng: random.Random | None = None) -> str:
    """A 17-digit id starting with `99`, like ACS's.

    The 11 digits after `99` count centiseconds down from 2051 back to 2020, so ids (and Table
    partition keys) sort newest first, which is the order ACS lists rooms in; 4 random digits
    follow, and the caller retries on the rare collision.

    Ids made one after another in this process also sort newest first when they fall in one
    centisecond: an id that would not sort before the previous one (and is less than 0.1 s
    older) takes a random value just below it instead.
    """
    global _last_id
    rng = rng or random.SystemRandom()
    elapsed = int((now - _ID_EPOCH).total_seconds() * 100)
    countdown = max(0, 10**_ID_TIME_DIGITS - 1 - elapsed)
    value = countdown * 10_000 + rng.randrange(10_000)
    with _last_id_lock:
        if 0 <= value - _last_id < 10 * 10_000:  # one burst in this process: keep newest first
            value = max(0, _last_id - 1 - rng.randrange(100))
        _last_id = value
    return f"{GENERATED_ROOM_ID_PREFIX}{value:0{_ID_TIME_DIGITS + 4}d}"


def is_room_id(value: object) -> bool:
    """Whether `value` can be a room id: exactly ROOM_ID_LENGTH ASCII digits."""
    return isinstance(value, str) and _ROOM_ID.fullmatch(value) is not None


def check_room_id(room_id: str) -> None:
    """Raise InvalidRequest, with ACS's message, for an id that cannot be a room id."""
    if not is_room_id(room_id):
        raise InvalidRequest("Invalid room ID length.")


def parse_role(raw_id: str, value: Any) -> Role:
    """A participant entry's role; `null`, `{}` or `{"role": null}` mean Attendee, ACS's default."""
    if value is None:
        return Role.ATTENDEE
    if not isinstance(value, dict):
        raise InvalidArgument(ROLE_ERROR, f"$.participants.{raw_id}.role")
    role = value.get("role")
    if role is None:
        return Role.ATTENDEE
    if isinstance(role, str) and role.lower() in _ROLES_BY_NAME:
        return _ROLES_BY_NAME[role.lower()]
    raise InvalidArgument(ROLE_ERROR, f"$.participants.{raw_id}.role")


def _optional_time(body: Mapping, key: str, target: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise InvalidArgument(f"The value of {key} is not a valid RFC 3339 date-time.", target) from None


def _optional_bool(body: Mapping, key: str, target: str) -> bool | None:
    value = body.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise InvalidArgument(f"The value of {key} must be true or false.", target)


def _require_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


@dataclass(frozen=True)
class CreateRoomRequest:
    valid_from: datetime | None
    valid_until: datetime | None
    pstn_dial_out_enabled: bool
    participants: dict[str, Role] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: Any) -> "CreateRoomRequest":
        """Validate a CreateRoomRequest body; raises InvalidRequest or InvalidArgument with ACS's messages."""
        body = _require_object(body)
        participants = body.get("participants")
        if participants is None:
            participants = {}
        if not isinstance(participants, dict):  # [] or "" too: falsy is not the same as absent
            raise InvalidRequest("The participants field must be a JSON object keyed by raw id.")
        roster: dict[str, Role] = {}
        for raw_id, entry in participants.items():
            if not is_acs_user(raw_id):
                raise InvalidRequest("Invalid format for communication identifier.")
            if entry is None:
                continue  # a null entry asks for nothing on create; the spec example carries one
            roster[raw_id] = parse_role(raw_id, entry)
        return cls(
            valid_from=_optional_time(body, "validFrom", "ValidFrom"),
            valid_until=_optional_time(body, "validUntil", "ValidUntil"),
            pstn_dial_out_enabled=bool(_optional_bool(body, "pstnDialOutEnabled", "PstnDialOutEnabled")),
            participants=roster,
        )


@dataclass(frozen=True)
class UpdateRoomRequest:
    """Merge-patch: a field left out or `null` keeps its stored value."""

    valid_from: datetime | None
    valid_until: datetime | None
    pstn_dial_out_enabled: bool | None

    @classmethod
    def parse(cls, body: Any) -> "UpdateRoomRequest":
        body = _require_object(body)
        return cls(
            valid_from=_optional_time(body, "validFrom", "ValidFrom"),
            valid_until=_optional_time(body, "validUntil", "ValidUntil"),
            pstn_dial_out_enabled=_optional_bool(body, "pstnDialOutEnabled", "PstnDialOutEnabled"),
        )

    def apply(self, room: Room) -> Room:
        return Room(
            id=room.id,
            created_at=room.created_at,
            valid_from=self.valid_from or room.valid_from,
            valid_until=self.valid_until or room.valid_until,
            pstn_dial_out_enabled=room.pstn_dial_out_enabled
            if self.pstn_dial_out_enabled is None
            else self.pstn_dial_out_enabled,
        )


def parse_participant_changes(body: Any) -> dict[str, Role | None]:
    """An UpdateParticipantsRequest: raw id -> new role, or None to remove. All-or-nothing."""
    body = _require_object(body)
    participants = body.get("participants")
    if not isinstance(participants, dict):
        raise InvalidRequest("The participants field is required and must be a JSON object keyed by raw id.")
    changes: dict[str, Role | None] = {}
    for raw_id, entry in participants.items():
        if not is_acs_user(raw_id):
            raise InvalidRequest(f"Communication identifier {raw_id} is not supported.")
        changes[raw_id] = None if entry is None else parse_role(raw_id, entry)
    return changes


def default_window(
    valid_from: datetime | None, valid_until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """ACS's create defaults: validFrom now, validUntil validFrom + 180 days.

    A validFrom too far ahead is refused here already, before the default end is computed from it.
    """
    start = valid_from or now
    if start > now + MAX_VALIDITY:
        raise InvalidArgument("Value is incorrect or more than 180 days in the future.", "ValidFrom")
    return start, valid_until or start + MAX_VALIDITY


def check_window(valid_from: datetime, valid_until: datetime, now: datetime) -> None:
    """ACS's validity rules, checked in the order the service answers them."""
    if valid_from > now + MAX_VALIDITY:
        raise InvalidArgument("Value is incorrect or more than 180 days in the future.", "ValidFrom")
    if valid_until <= now:
        raise InvalidArgument("The time range end is in the past.", "ValidUntil")
    if valid_until <= valid_from or valid_until - valid_from > MAX_VALIDITY:
        raise InvalidArgument("The time range is incorrect, or larger than 180 days.", "ValidUntil")
