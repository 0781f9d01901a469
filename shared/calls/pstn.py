"""Outbound PSTN: the gateway the app dials through, and the per-number concurrent-call limit."""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import requests
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from ..core.errors import ConcurrentCallLimitReached, GatewayUnavailable
from ..storage.faults import storage_faults
from ..storage.retry import ConflictRetry
from ..storage.tables import TableStore
from ..storage.transactions import ConcurrentChange

MAX_CONCURRENT_CALLS_PER_NUMBER = 2  # ACS's default outbound limit per number
# Only the calls of one number contend for its entity: a few attempts get every change through.
LINE_WRITES = ConflictRetry(attempts=50, first_pause=0.002, max_pause=0.05)


def leg_reference(room_id: str, participant_id: str) -> str:
    """How the app and the gateway name one phone leg (`reference` of place_call and hang_up)."""
    return f"{room_id}|{participant_id}"


class DialOutcome(str, enum.Enum):
    ANSWERED = "answered"
    DECLINED = "declined"
    BUSY = "busy"
    NO_ANSWER = "noAnswer"


class PstnNetwork(Protocol):
    def place_call(self, source: str, target: str, reference: str) -> DialOutcome:
        """Ring `target` showing `source`; answer how the call went. `reference` names the endpoint
        in later phone-side events (hang-up, mute) the network sends back to the app."""

    def hang_up(self, reference: str) -> None:
        """End the leg placed for `reference`, ringing or connected; one already ended is no error.
        Raises GatewayUnavailable when the network could not be told."""


@dataclass(frozen=True)
class HttpPstnGateway:
    """A PSTN gateway reached over HTTP: `POST <url>/calls` with `{source, target, reference}`,
    answered with `{"outcome": "answered" | "declined" | "busy" | "noAnswer"}`; `DELETE
    <url>/calls/<reference, percent-encoded>` hangs a leg up (2xx, or 404 for a leg it no longer has)."""

    url: str
    timeout: float = 60.0

    def place_call(self, source: str, target: str, reference: str) -> DialOutcome:
        try:
            response = requests.post(
                self.url.rstrip("/") + "/calls",
                json={"source": source, "target": target, "reference": reference},
                timeout=self.timeout,
            )
            response.raise_for_status()
            return DialOutcome(response.json()["outcome"])
        except (requests.RequestException, ValueError, KeyError) as error:
            raise GatewayUnavailable(f"The PSTN gateway could not place the call: {error}") from None

    def hang_up(self, reference: str) -> None:
        try:
            response = requests.delete(f"{self.url.rstrip('/')}/calls/{quote(reference, safe='')}", timeout=self.timeout)
            if response.status_code != 404:  # 404: the leg is gone already (the phone hung up first)
                response.raise_for_status()
        except requests.RequestException as error:
            raise GatewayUnavailable(f"The PSTN gateway could not hang up {reference}: {error}") from None


class PstnLines(Protocol):
    """The outbound calls in progress per caller number, across all rooms and instances."""

    def acquire(self, number: str, reference: str) -> None:
        """Take a line of `number` for `reference` (again: no change); raises ConcurrentCallLimitReached
        when all its lines are busy."""

    def release(self, number: str, reference: str) -> None:
        """Give back the line `reference` holds, if it holds one."""


class TablePstnLines:
    """PstnLines on Azure Table storage.

    One entity per number holds its calls in progress; changes are ETag-guarded so two instances
    can never both take the last line.
    """

    def __init__(self, tables: TableStore, table_name: str, limit: int = MAX_CONCURRENT_CALLS_PER_NUMBER) -> None:
        self._tables = tables
        self._table_name = table_name
        self._limit = limit

    @property
    def _table(self):
        return self._tables.table(self._table_name)

    def _read(self, number: str):
        try:
            entity = self._table.get_entity(number, "lines")
            return entity, json.loads(entity["Calls"])
        except ResourceNotFoundError:
            return None, []

    def _write(self, number: str, entity, calls: list[str]) -> None:
        """Store `calls` if the entity is as read (None: not there yet); else ConcurrentChange."""
        fresh = {"PartitionKey": number, "RowKey": "lines", "Calls": json.dumps(calls)}
        try:
            if entity is None:
                self._table.create_entity(fresh)
            else:
                self._table.update_entity(
                    fresh, mode=UpdateMode.REPLACE, etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as error:
            raise ConcurrentChange(number) from error

    def acquire(self, number: str, reference: str) -> None:
        """Take a line of `number` for `reference`; raises ConcurrentCallLimitReached when all its lines are busy."""
        def take(_attempt: int) -> None:
            with storage_faults():
                entity, calls = self._read(number)
                if reference in calls:
                    return
                if len(calls) >= self._limit:
                    raise ConcurrentCallLimitReached(number, self._limit)
                self._write(number, entity, calls + [reference])

        LINE_WRITES.run(take, f"The lines of {number} are changing too often; retry later.")

    def release(self, number: str, reference: str) -> None:
        def give_back(_attempt: int) -> None:
            with storage_faults():
                entity, calls = self._read(number)
                if entity is None or reference not in calls:
                    return
                self._write(number, entity, [call for call in calls if call != reference])

        LINE_WRITES.run(give_back, f"The lines of {number} are changing too often; retry later.")
