"""Seed files: identities, rooms with rosters and Event Grid subscriptions as one JSON document.

A seed is checked whole before anything is written: JSON syntax, the document's shape, every room by
the create-room API's own rules (roles, identifiers, the 180-day window), every subscription as the
subscriptions file is checked. A refusal names the line and the reason, and nothing is imported.

Identity ids carry the resource they belong to (`8:acs:<resource>_<user>`), and a fresh instance has
a new resource id: ids of the seed's `resourceId` (or of any other resource) are moved to this
instance's resource with the same user part, in identities and rosters alike, so a seed keeps its
users across instances.
"""
from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from json.decoder import scanstring
from typing import Any

from ..eventgrid.subscriptions import SubscriptionError, parse_subscription
from . import appstate

SEED_VERSION = 1
_TOP_LEVEL = {"anteroomSeed", "resourceId", "exportedAt", "identities", "rooms", "subscriptions", "$comment"}
_GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ANTEROOM_USER = re.compile(rf"8:acs:({_GUID})_({_GUID})")
# Targets of the create-room API's errors -> the seed's own key.
_TARGET_KEYS = {"ValidFrom": "validFrom", "ValidUntil": "validUntil", "PstnDialOutEnabled": "pstnDialOutEnabled",
                "id": "id"}


class SeedError(ValueError):
    """A seed refused whole: where (line, path), why, and the API's error body when a rule refused it."""

    def __init__(self, source: str, line: int | None, path: str, reason: str, acs_error: dict | None = None):
        self.source, self.line, self.path, self.reason, self.acs_error = source, line, path, reason, acs_error
        where = f"{source} line {line}" if line else source
        super().__init__(f"{where}: {path + ': ' if path else ''}{reason}")

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": "InvalidSeed", "message": str(self), "line": self.line, "path": self.path,
                                 "reason": self.reason}
        if self.acs_error is not None:
            error["acsError"] = self.acs_error
        return {"error": error}


def format_path(path: tuple) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def value_lines(text: str) -> dict[tuple, int]:
    """Path -> line of every value (and, for object members, of its key) in valid JSON `text`."""
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    whitespace = re.compile(r"[ \t\n\r]*")
    scalar = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")
    lines: dict[tuple, int] = {}

    def line_at(position: int) -> int:
        return bisect.bisect_left(newlines, position) + 1

    def skip(position: int) -> int:
        return whitespace.match(text, position).end()

    def value(position: int, path: tuple) -> int:
        position = skip(position)
        lines.setdefault(path, line_at(position))
        opening = text[position]
        if opening == "{":
            position = skip(position + 1)
            if text[position] == "}":
                return position + 1
            while True:
                position = skip(position)
                key_line = line_at(position)
                key, position = scanstring(text, position + 1)
                lines[path + (key,)] = key_line
                position = skip(position) + 1  # the colon
                position = skip(value(position, path + (key,)))
                if text[position] == ",":
                    position += 1
                    continue
                return position + 1
        if opening == "[":
            position = skip(position + 1)
            if text[position] == "]":
                return position + 1
            index = 0
            while True:
                position = skip(value(position, path + (index,)))
                index += 1
                if text[position] == ",":
                    position += 1
                    continue
                return position + 1
        if opening == '"':
            return scanstring(text, position + 1)[1]
        return scalar.match(text, position).end()

    value(0, ())
    return lines


@dataclass
class Seed:
    """A checked seed, ready to apply to this instance."""

    identities: list[str] = field(default_factory=list)  # user parts (GUIDs)
    rooms: list[appstate.RoomSpec] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    moved_ids: dict[str, str] = field(default_factory=dict)  # seed id -> id here, where they differ


class _Checker:
    def __init__(self, text: str, source: str, resource_id: str, max_participants: int | None) -> None:
        self.text, self.source, self.resource_id = text, source, resource_id
        self.max_participants = max_participants
        self._lines: dict[tuple, int] | None = None
        self.moved: dict[str, str] = {}

    def refuse(self, path: tuple, reason: str, acs_error: dict | None = None) -> SeedError:
        if self._lines is None:
            self._lines = value_lines(self.text)
        probe = path
        while probe and probe not in self._lines:
            probe = probe[:-1]
        return SeedError(self.source, self._lines.get(probe), format_path(path), reason, acs_error)

    def here(self, raw_id: str) -> str:
        """The id on this instance of an Anteroom user id of any resource (others unchanged)."""
        match = _ANTEROOM_USER.fullmatch(raw_id)
        if not match or match.group(1) == self.resource_id:
            return raw_id
        moved = f"8:acs:{self.resource_id}_{match.group(2)}"
        self.moved[raw_id] = moved
        return moved

    def list_of(self, document: dict, key: str) -> list:
        value = document.get(key, [])
        if not isinstance(value, list):
            raise self.refuse((key,), f"'{key}' must be a list")
        return value

    def check(self, now: datetime) -> Seed:
        try:
            document = json.loads(self.text)
        except ValueError as error:
            line = getattr(error, "lineno", None)
            reason = getattr(error, "msg", str(error))
            raise SeedError(self.source, line, "", f"not valid JSON: {reason}") from None
        if not isinstance(document, dict):
            raise self.refuse((), "a seed is a JSON object")
        for key in document:
            if key not in _TOP_LEVEL:
                raise self.refuse((key,), f"unknown key; a seed has {', '.join(sorted(_TOP_LEVEL - {'$comment'}))}")
        if document.get("anteroomSeed", SEED_VERSION) != SEED_VERSION:
            raise self.refuse(("anteroomSeed",), f"this Anteroom reads seeds of version {SEED_VERSION}")
        seed = Seed()
        seen: set[str] = set()
        for index, entry in enumerate(self.list_of(document, "identities")):
            path = ("identities", index)
            raw_id = entry.get("id") if isinstance(entry, dict) else None
            match = _ANTEROOM_USER.fullmatch(raw_id) if isinstance(raw_id, str) else None
            if not match:
                raise self.refuse(path + ("id",) if isinstance(entry, dict) else path,
                                  "an identity is {\"id\": \"8:acs:<resource GUID>_<user GUID>\"}")
            if match.group(2) in seen:
                raise self.refuse(path + ("id",), f"identity {raw_id} appears twice")
            seen.add(match.group(2))
            self.here(raw_id)
            seed.identities.append(match.group(2))
        room_ids: set[str] = set()
        for index, entry in enumerate(self.list_of(document, "rooms")):
            seed.rooms.append(self._room(("rooms", index), entry, now, room_ids))
        names: set[str] = set()
        for index, entry in enumerate(self.list_of(document, "subscriptions")):
            path = ("subscriptions", index)
            try:
                subscription = parse_subscription(entry)
            except SubscriptionError as error:
                raise self.refuse(path, str(error)) from None
            if subscription.name.lower() in names:
                raise self.refuse(path + ("name",), f"subscription {subscription.name} appears twice")
            names.add(subscription.name.lower())
            seed.subscriptions.append(entry)
        seed.moved_ids = dict(self.moved)
        return seed

    def _room(self, path: tuple, entry: Any, now: datetime, room_ids: set[str]) -> appstate.RoomSpec:
        if not isinstance(entry, dict):
            raise self.refuse(path, "a room is an object: {\"id\", \"validFrom\", \"validUntil\", "
                                    "\"pstnDialOutEnabled\", \"participants\": {rawId: {\"role\"}}}")
        room_id = entry.get("id")
        if room_id in room_ids:
            raise self.refuse(path + ("id",), f"room {room_id} appears twice")
        body = {key: value for key, value in entry.items() if key != "id"}
        participants = body.get("participants")
        if isinstance(participants, dict):
            for raw_id in participants:
                if not appstate.is_acs_user(raw_id):
                    raise self.refuse(path + ("participants", raw_id),
                                      "Invalid format for communication identifier.",
                                      {"error": {"code": "BadRequest",
                                                 "message": "Invalid format for communication identifier."}})
            body["participants"] = {self.here(raw_id): role for raw_id, role in participants.items()}
        try:
            spec = appstate.check_room(room_id, body, now, self.max_participants)
        except appstate.HttpError as error:
            detail = error.details[0] if error.details else None
            reason = detail.message if detail else error.message
            target = (detail.target if detail else None) or error.target or ""
            if target.startswith("$.participants."):
                member = target.removeprefix("$.participants.").rsplit(".", 1)
                located = path + ("participants", self._seed_raw_id(member[0]), *member[1:])
            else:
                located = path + ((_TARGET_KEYS[target],) if target in _TARGET_KEYS else ())
            raise self.refuse(located, reason, error.to_body()) from None
        room_ids.add(room_id)
        return spec

    def _seed_raw_id(self, raw_id: str) -> str:
        for seed_id, moved in self.moved.items():
            if moved == raw_id:
                return seed_id
        return raw_id


def check_seed(text: str, source: str = "seed", now: datetime | None = None, *,
               resource_id: str | None = None, max_participants: int | None = None) -> Seed:
    """Check a seed document whole; raises SeedError naming the line and the reason.

    Without `resource_id` and `max_participants` the running app's settings apply (a check before
    the app runs passes both)."""
    resource = resource_id or appstate.settings().resource_id
    return _Checker(text, source, resource, max_participants).check(now or datetime.now(timezone.utc))


def export_document(identities: list[dict], rooms: list[dict], subscriptions: list[dict]) -> dict[str, Any]:
    """A seed of what exists now: identities, rooms still valid with their rosters, subscriptions."""
    now = datetime.now(timezone.utc)
    live = [room for room in rooms if datetime.fromisoformat(room["validUntil"].replace("Z", "+00:00")) > now]
    return {
        "anteroomSeed": SEED_VERSION,
        "resourceId": appstate.settings().resource_id,
        "exportedAt": appstate.acs_time(now),
        "identities": [{"id": identity["id"]} for identity in identities],
        "rooms": [{"id": room["id"], "validFrom": room["validFrom"], "validUntil": room["validUntil"],
                   "pstnDialOutEnabled": room["pstnDialOutEnabled"],
                   "participants": {entry["rawId"]: {"role": entry["role"]} for entry in room["roster"]}}
                  for room in live],
        "subscriptions": subscriptions,
    }
