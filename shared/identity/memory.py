"""The in-memory twin of TableUsersStore, for unit tests of the domain."""
from __future__ import annotations

from datetime import datetime
from typing import Mapping

from .store import USER_ROW
from ..storage.memory import MemoryTable, Write


class MemoryUsersStore:
    """UsersStore in a MemoryTable; a user is a copy of its row, keys and all, as a Table entity is."""

    def __init__(self, table: MemoryTable) -> None:
        self._table = table

    def get(self, local_part: str) -> dict | None:
        stored = self._table.get(local_part, USER_ROW)
        return dict(stored.value) if stored is not None else None

    def create(self, local_part: str, created_at: datetime) -> None:
        user = {"PartitionKey": local_part, "RowKey": USER_ROW, "CreatedAt": created_at}
        self._table.commit([Write("create", local_part, USER_ROW, user)])

    def revoke_before(self, user: Mapping, moment: datetime) -> None:
        # A merge-upsert, as TableUsersStore's.
        self._table.commit([Write("merge", user["PartitionKey"], USER_ROW, {**user, "RevokedBefore": moment})])

    def delete(self, local_part: str) -> None:
        self._table.commit([Write("delete", local_part, USER_ROW)])
