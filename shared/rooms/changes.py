"""Room changes other contexts follow at once (a room deleted, users off a roster): the hub the rooms publish to."""
from __future__ import annotations

from typing import Protocol


class RoomObserver(Protocol):
    """Told, synchronously and after the change committed, about room changes it must follow."""

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

    def room_deleted(self, room_id: str) -> None:
        for observer in self._observers:
            observer.room_deleted(room_id)

    def users_removed(self, room_id: str, raw_ids: set[str]) -> None:
        for observer in self._observers:
            observer.users_removed(room_id, raw_ids)
