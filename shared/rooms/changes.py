"""Room changes other contexts follow (a roster changing, a room deleted, users off a roster): the hub the rooms publish to."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from .model import Role
from .store import RoomRecord


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class StagedWrites:
    """What an observer adds to a roster change's own transaction, and what it does once that committed.

    `operations` are in the rooms store's transaction format, for rows of the room's own partition
    (the call and its endpoints live there): they commit with the roster or not at all.
    `committed` runs right after the commit, for quick work only (waking a dispatcher).
    """

    operations: tuple = ()
    committed: Callable[[], None] = _nothing


class RoomObserver(Protocol):
    """Follows room changes: staged into a roster change's transaction, or told synchronously after
    a deletion or removal committed."""

    def roster_changing(self, record: RoomRecord, old: dict[str, Role], new: dict[str, Role]) -> StagedWrites:
        """Called for every attempt at a roster change (`record` and `old` as read, `new` as it
        would commit); answers what must commit with it."""
    def room_deleted(self, room_id: str) -> None: ...
    def users_removed(self, room_id: str, raw_ids: set[str]) -> None: ...


class RoomChanges:
    """The hub between RoomsService and whoever follows its changes (the room calls).

    The composition root makes one and hands it to every constructor concerned: RoomsService
    publishes to it, observers subscribe to it when they are built. The rooms never learn who
    listens, so nothing in shared/rooms imports a context above it.
    """

    def __init__(self) -> None:
        self._observers: list[RoomObserver] = []

    def subscribe(self, observer: RoomObserver) -> None:
        self._observers.append(observer)

    def roster_changing(self, record: RoomRecord, old: dict[str, Role], new: dict[str, Role]) -> list[StagedWrites]:
        return [observer.roster_changing(record, old, new) for observer in self._observers]

    def room_deleted(self, room_id: str) -> None:
        for observer in self._observers:
            observer.room_deleted(room_id)

    def users_removed(self, room_id: str, raw_ids: set[str]) -> None:
        for observer in self._observers:
            observer.users_removed(room_id, raw_ids)
