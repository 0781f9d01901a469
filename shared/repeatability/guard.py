"""Repeatable requests (`Repeatability-Request-ID` / `Repeatability-First-Sent`) as ACS defines them.

The first request with an id runs; a repeat with the same fingerprint gets the first answer again;
a repeat with another body is refused. The first request reserves its outcome's key (e.g. the room
id) before it runs, so a request interrupted half-way can be finished by its retry instead of
running twice.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Mapping

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from ..core.clock import Clock
from ..core.errors import (
    ChangeContended,
    InvalidRequest,
    OriginalRequestInProgress,
    RepeatabilityWindowPassed,
    RequestIdReused,
)
from ..storage.faults import storage_faults
from ..storage.retry import ConflictRetry
from ..storage.tables import TableStore
from ..storage.transactions import ConcurrentChange
from ..core.timefmt import parse_imf_fixdate

REQUEST_ID_HEADER = "repeatability-request-id"
FIRST_SENT_HEADER = "repeatability-first-sent"
# A first attempt that has not finished after this long is presumed dead; its retry takes over.
STALE_AFTER = timedelta(seconds=30)
# A repeat waits this long (about 5 s) for the first request with its id to finish.
WAIT_FOR_FIRST = ConflictRetry(attempts=100, first_pause=0.1, max_pause=0.1)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: object | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RepeatabilityHeaders:
    request_id: str
    first_sent: datetime

    @classmethod
    def parse(cls, headers: Mapping[str, str], now: datetime, window: timedelta, skew: timedelta):
        """None when the request is not repeatable; raises InvalidRequest for bad headers, RepeatabilityWindowPassed when too old."""
        request_id = headers.get(REQUEST_ID_HEADER)
        first_sent = headers.get(FIRST_SENT_HEADER)
        if request_id is None and first_sent is None:
            return None
        if not request_id:
            raise InvalidRequest("The Repeatability-Request-ID header is required with Repeatability-First-Sent.")
        try:
            request_id = str(uuid.UUID(request_id.strip()))
        except ValueError:
            raise InvalidRequest("The Repeatability-Request-ID header must be a UUID.") from None
        if not first_sent:
            raise InvalidRequest("The Repeatability-First-Sent header is required with Repeatability-Request-ID.")
        try:
            sent_at = parse_imf_fixdate(first_sent)
        except ValueError:
            raise InvalidRequest("The Repeatability-First-Sent header must be an RFC 1123 date.") from None
        if sent_at > now + skew:
            raise InvalidRequest("The Repeatability-First-Sent header is in the future.")
        if now - sent_at > window:
            raise RepeatabilityWindowPassed(int(window.total_seconds() // 60))
        return cls(request_id, sent_at)


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class RepeatabilityGuard:
    """Runs a repeatable operation at most once per request id (records kept in a Table)."""

    def __init__(self, tables: TableStore, table_name: str, clock: Clock, window: timedelta) -> None:
        self._tables = tables
        self._table_name = table_name
        self._clock = clock
        self.window = window

    @property
    def _table(self):
        return self._tables.table(self._table_name)

    def run(
        self,
        request_id: str,
        request_fingerprint: str,
        reserve: Callable[[], str],
        execute: Callable[[str], StoredResponse],
        recover: Callable[[str], StoredResponse | None],
    ) -> tuple[StoredResponse, bool]:
        """Return (response, replayed).

        `reserve()` picks the key the operation will use, `execute(key)` performs it, and
        `recover(key)` answers for an operation that completed but whose answer was not recorded.
        Raises RequestIdReused when the id was used with another request, OriginalRequestInProgress
        while the first is still running after WAIT_FOR_FIRST.
        """
        entity = {
            "PartitionKey": request_id,
            "RowKey": "r",
            "Fingerprint": request_fingerprint,
            "Reservation": reserve(),
            "State": "pending",
        }
        absent = True  # no record of the id seen yet: this request may be the first

        def take_or_replay(_number: int) -> tuple[dict | None, StoredResponse | None]:
            """The record this request runs under (its own, or a stale one it claimed), or the stored answer."""
            nonlocal absent
            if absent:
                entity["StartedAt"] = self._clock()
                if self._create(entity):
                    return entity, None
            stored = self._read(request_id)
            absent = stored is None
            if absent:  # the first attempt failed with a 5xx and gave way: this one runs instead
                raise ConcurrentChange(request_id)
            if stored["Fingerprint"] != request_fingerprint:
                raise RequestIdReused()
            if stored["State"] == "done":
                return None, StoredResponse(stored["Status"], json.loads(stored["Body"]), json.loads(stored["Headers"]))
            if self._clock() - stored["StartedAt"] > STALE_AFTER and self._claim(stored):
                return stored, None
            raise ConcurrentChange(request_id)  # the first attempt holds the id: wait for its answer

        try:
            record, answer = WAIT_FOR_FIRST.run(take_or_replay, "The first request with this id is still running.")
        except ChangeContended:
            raise OriginalRequestInProgress() from None
        if answer is not None:
            return answer, True
        if record is not entity:  # a stale first attempt may have completed without recording its answer
            recovered = recover(record["Reservation"])
            if recovered is not None:
                self._record(record, recovered)
                return recovered, True
        return self._finish(record, execute), False

    def _create(self, entity) -> bool:
        """Record a first attempt; False when the id already has a record."""
        with storage_faults():
            try:
                self._table.create_entity(entity)
                return True
            except ResourceExistsError:
                return False

    def _read(self, request_id: str):
        with storage_faults():
            try:
                return self._table.get_entity(request_id, "r")
            except ResourceNotFoundError:
                return None

    def _claim(self, stored) -> bool:
        """Take over a stale attempt; only one retry wins the ETag race."""
        stored["StartedAt"] = self._clock()
        with storage_faults():
            try:
                self._table.update_entity(
                    stored, mode=UpdateMode.REPLACE, etag=stored.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return True
            except (ResourceModifiedError, ResourceNotFoundError):
                return False

    def _finish(self, entity, execute: Callable[[str], StoredResponse]) -> StoredResponse:
        try:
            response = execute(entity["Reservation"])
        except Exception:
            self._forget(entity)
            raise
        if response.status >= 500:
            self._forget(entity)  # ACS re-executes a repeat of a request that failed on its side
        else:
            self._record(entity, response)
        return response

    def _record(self, entity, response: StoredResponse) -> None:
        done = {key: entity[key] for key in ("PartitionKey", "RowKey", "Fingerprint", "Reservation", "StartedAt")}
        done.update(
            State="done", Status=response.status,
            Body=json.dumps(response.body), Headers=json.dumps(response.headers),
        )
        with storage_faults():
            self._table.upsert_entity(done, mode=UpdateMode.REPLACE)

    def _forget(self, entity) -> None:
        with storage_faults():
            try:
                self._table.delete_entity(entity["PartitionKey"], entity["RowKey"])
            except ResourceNotFoundError:
                pass

    def sweep(self) -> int:
        """Delete records older than the window (plus a margin): repeats that old get 412 anyway."""
        cutoff = self._clock() - self.window - STALE_AFTER
        removed = 0
        with storage_faults():
            for entity in self._table.query_entities("StartedAt lt @cutoff", parameters={"cutoff": cutoff}, select=["PartitionKey", "RowKey"]):
                self._table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                removed += 1
        return removed
