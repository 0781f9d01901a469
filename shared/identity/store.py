"""Where identities live: the UsersStore port and its Table implementation, PartitionKey the user id's own part (a GUID), RowKey `user`."""
from __future__ import annotations

from datetime import datetime
from typing import Mapping, Protocol

from azure.core.exceptions import ResourceNotFoundError

from ..storage.faults import storage_faults
from ..storage.tables import TableStore

USER_ROW = "user"


class UsersStore(Protocol):
    """Users by the local part of their id; a user is a mapping with `CreatedAt` and, once revoked, `RevokedBefore`."""

    def get(self, local_part: str) -> Mapping | None:
        """The user, or None for a user that does not exist (never did, or was deleted)."""

    def create(self, local_part: str, created_at: datetime) -> None: ...

    def revoke_before(self, user: Mapping, moment: datetime) -> None:
        """Record that every token issued up to `moment` is revoked."""

    def delete(self, local_part: str) -> None:
        """Delete the user; deleting one that is not there is no error."""


class TableUsersStore:
    """UsersStore on Azure Table storage."""

    def __init__(self, tables: TableStore, table_name: str) -> None:
        self._tables = tables
        self._table_name = table_name

    @property
    def _table(self):
        return self._tables.table(self._table_name)

    def get(self, local_part: str):
        with storage_faults():
            try:
                return self._table.get_entity(local_part, USER_ROW)
            except ResourceNotFoundError:
                return None

    def create(self, local_part: str, created_at: datetime) -> None:
        with storage_faults():
            self._table.create_entity({"PartitionKey": local_part, "RowKey": USER_ROW, "CreatedAt": created_at})

    def revoke_before(self, entity, moment: datetime) -> None:
        entity["RevokedBefore"] = moment
        with storage_faults():
            self._table.upsert_entity(entity)

    def delete(self, local_part: str) -> None:
        with storage_faults():
            self._table.delete_entity(local_part, USER_ROW)
