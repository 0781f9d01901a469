"""Where repeatable requests' attempts live: the RepeatabilityStore port and its Table implementation, one row per request id."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from ..storage.faults import storage_faults
from ..storage.tables import TableStore

ATTEMPT_ROW = "r"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: object | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Attempt:
    """A request id's record: the request it belongs to, the key it reserved, since when it runs, its answer once done."""

    request_id: str
    fingerprint: str
    reservation: str
    started_at: datetime
    response: StoredResponse | None = None  # None while the attempt runs
    etag: str = ""


class RepeatabilityStore(Protocol):
    def reserve(self, attempt: Attempt) -> bool:
        """Record a first attempt; False when its request id has one already."""

    def get(self, request_id: str) -> Attempt | None: ...

    def claim(self, attempt: Attempt, now: datetime) -> Attempt | None:
        """Restart `attempt` at `now` if unchanged since read; None when someone else changed or removed it first."""

    def finish(self, attempt: Attempt, response: StoredResponse) -> None:
        """Record the attempt's answer, for every repeat to replay."""

    def forget(self, request_id: str) -> None:
        """Remove the attempt (if there) so a repeat runs again."""

    def sweep(self, cutoff: datetime) -> int:
        """Remove attempts started before `cutoff`; returns how many went."""


class TableRepeatabilityStore:
    """RepeatabilityStore on Azure Table storage: PartitionKey the request id, RowKey `r`."""

    def __init__(self, tables: TableStore, table_name: str) -> None:
        self._tables = tables
        self._table_name = table_name

    @property
    def _table(self):
        return self._tables.table(self._table_name)

    @staticmethod
    def _entity(attempt: Attempt) -> dict:
        entity = {
            "PartitionKey": attempt.request_id,
            "RowKey": ATTEMPT_ROW,
            "Fingerprint": attempt.fingerprint,
            "Reservation": attempt.reservation,
            "State": "pending",
            "StartedAt": attempt.started_at,
        }
        if attempt.response is not None:
            response = attempt.response
            entity.update(
                State="done", Status=response.status,
                Body=json.dumps(response.body), Headers=json.dumps(response.headers),
            )
        return entity

    @staticmethod
    def _attempt(entity) -> Attempt:
        response = None
        if entity["State"] == "done":
            response = StoredResponse(entity["Status"], json.loads(entity["Body"]), json.loads(entity["Headers"]))
        return Attempt(
            entity["PartitionKey"], entity["Fingerprint"], entity["Reservation"], entity["StartedAt"], response,
            etag=entity.metadata["etag"],
        )

    def reserve(self, attempt: Attempt) -> bool:
        with storage_faults():
            try:
                self._table.create_entity(self._entity(attempt))
                return True
            except ResourceExistsError:
                return False

    def get(self, request_id: str) -> Attempt | None:
        with storage_faults():
            try:
                return self._attempt(self._table.get_entity(request_id, ATTEMPT_ROW))
            except ResourceNotFoundError:
                return None

    def claim(self, attempt: Attempt, now: datetime) -> Attempt | None:
        claimed = replace(attempt, started_at=now)
        with storage_faults():
            try:
                metadata = self._table.update_entity(
                    self._entity(claimed), mode=UpdateMode.REPLACE, etag=attempt.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return None
        return replace(claimed, etag=metadata["etag"])

    def finish(self, attempt: Attempt, response: StoredResponse) -> None:
        with storage_faults():
            self._table.upsert_entity(self._entity(replace(attempt, response=response)), mode=UpdateMode.REPLACE)

    def forget(self, request_id: str) -> None:
        with storage_faults():
            try:
                self._table.delete_entity(request_id, ATTEMPT_ROW)
            except ResourceNotFoundError:
                pass

    def sweep(self, cutoff: datetime) -> int:
        removed = 0
        with storage_faults():
            for entity in self._table.query_entities(
                "StartedAt lt @cutoff", parameters={"cutoff": cutoff}, select=["PartitionKey", "RowKey"]
            ):
                self._table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                removed += 1
        return removed
