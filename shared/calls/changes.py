"""The port a call change's observers implement: entities for the change's own transaction, then a hook after it commits."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .model import Call, CallParticipant


@dataclass(frozen=True)
class CallChange:
    """One change of a room's call, as decided: the call as read (None before the room's first
    call), the call it becomes, and the endpoints it adds or changes."""

    room_id: str
    before: Call | None
    after: Call
    changed: list[CallParticipant]


class CallChangeListener(Protocol):
    """What follows a call change: call events, Call Automation callbacks, attendance records.

    CallsService takes its listeners by constructor and, for every attempt at a change, asks each
    in order for `entities`; all of them join the change's one Table transaction (so a change and
    what it owes the world commit together or not at all). Once that transaction committed it calls
    `committed` on each, in the same order, with the entities that listener gave.
    """

    def entities(self, change: CallChange) -> list[dict]:
        """Entities to create in the change's transaction (outbox rows); [] for none."""

    def committed(self, change: CallChange, entities: list[dict]) -> None:
        """Runs in the request right after the commit: quick work only (wake a dispatcher, queue a log record)."""
