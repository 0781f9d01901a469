"""The transactional outbox: events written in the same Table transaction as the call change.

Rows live in the room's partition under RowKey `ev|<sequence>|<bundle>`, so a room's events sort
in commit order. A row carries a bundle of up to 30 events (a call that ends for 350 participants
still commits in one transaction). A row stays `pending` until the dispatcher has handed it to
Event Grid, then stays on as `delivered` (for replays) until the room itself is purged.

Call Automation callbacks use the same rows under their own prefix, `cb|`, each row bound for one
callback URI (`Destination`), and phone legs to hang up at the PSTN gateway theirs, `hu|`; an
`Outbox` reads one prefix, so each has its own dispatcher.

The call change's own transaction writes the rows (`outbox_entities`); the `Outbox` port reads
them and records their delivery, on Table storage `TableOutbox`.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Iterable, Protocol

from azure.data.tables import UpdateMode

from .model import OutgoingEvent
from ..core.clock import Clock
from ..storage.faults import storage_faults
from ..storage.tables import TableStore
from ..storage.transactions import chunked

PREFIX = "ev|"
CALLBACK_PREFIX = "cb|"
HANG_UP_PREFIX = "hu|"
PENDING, DELIVERED = "pending", "delivered"


BUNDLE = 30  # events per row: keeps the JSON under Table storage's 64 KiB per property


def events_from_entity(entity) -> list[OutgoingEvent]:
    return [
        OutgoingEvent(
            id=item["id"], event_type=item["type"], subject=item["subject"], data=item["data"],
            event_time=datetime.fromisoformat(item["time"]),
        )
        for item in json.loads(entity["Events"])
    ]


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """RowKeys strictly between these two are exactly those starting with `prefix` (which ends in '|')."""
    return prefix, prefix[:-1] + "}"


def outbox_entities(
    room_id: str, sequence: int, server_call_id: str, events: list[OutgoingEvent],
    *, prefix: str = PREFIX, destination: str | None = None, first_index: int = 0,
) -> list[dict]:
    """Rows to add to the call change's transaction (the caller submits them).

    `destination` (callbacks) names where the row's events go; `first_index` keeps RowKeys
    unique when one change writes rows for several destinations.
    """
    rows = []
    for index, start in enumerate(range(0, len(events), BUNDLE), start=first_index):
        bundle = events[start : start + BUNDLE]
        rows.append({
            "PartitionKey": room_id,
            "RowKey": f"{prefix}{sequence:012d}|{index:03d}",
            "Events": json.dumps([
                {"id": e.id, "type": e.event_type, "subject": e.subject, "data": e.data, "time": e.event_time.isoformat()}
                for e in bundle
            ]),
            "EventTime": bundle[0].event_time,
            "ServerCallId": server_call_id,
            "State": PENDING,
            "Attempts": 0,
            "NextAttemptAt": bundle[0].event_time,
            **({"Destination": destination} if destination else {}),
        })
    return rows


def delivered_patch(room_id: str, entity, now: datetime) -> dict:
    """What a row merges once its events were handed over."""
    return {"PartitionKey": room_id, "RowKey": entity["RowKey"], "State": DELIVERED, "DeliveredAt": now,
            "Attempts": entity["Attempts"] + 1}


def failed_patch(room_id: str, entity, now: datetime) -> dict:
    """What a row merges after a failed attempt: one more attempt, the next one later (exponential, at most 5 minutes)."""
    return {"PartitionKey": room_id, "RowKey": entity["RowKey"], "Attempts": entity["Attempts"] + 1,
            "NextAttemptAt": now + timedelta(seconds=min(300, 2 ** min(entity["Attempts"], 9)))}


class Outbox(Protocol):
    """The outbox rows of one prefix, across rooms."""

    def pending(self, room_id: str) -> list:
        """The room's rows not delivered yet, in commit order."""

    def mark_delivered(self, room_id: str, entities: list) -> None:
        """The rows are no longer pending; they stay in the history (`delivered_patch`)."""

    def mark_failed(self, room_id: str, entities: list) -> None:
        """Count a failed attempt and push the next one back (`failed_patch`)."""

    def rooms_with_due_events(self) -> set[str]:
        """Rooms whose pending events are due (the safety net's scan across partitions)."""

    def history(
        self, *, room_id: str | None = None, server_call_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[OutgoingEvent]:
        """Stored events (pending or delivered) of a room, a call or a time range, in commit order."""


class TableOutbox:
    """Outbox on Azure Table storage, in the rooms table."""

    def __init__(self, tables: TableStore, table_name: str, clock: Clock, prefix: str = PREFIX) -> None:
        self._tables = tables
        self._table_name = table_name  # the rooms table: events share the room's partition
        self._clock = clock
        self._low, self._high = prefix_bounds(prefix)

    @property
    def _table(self):
        return self._tables.table(self._table_name)

    def pending(self, room_id: str) -> list:
        with storage_faults():
            return list(
                self._table.query_entities(
                    "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high and State eq @pending",
                    parameters={"pk": room_id, "low": self._low, "high": self._high, "pending": PENDING},
                )
            )

    def _merge(self, room_id: str, rows: Iterable[dict]) -> None:
        operations = [("upsert", row, {"mode": UpdateMode.MERGE}) for row in rows]
        with storage_faults():
            for chunk in chunked(operations):
                self._table.submit_transaction(chunk)

    def mark_delivered(self, room_id: str, entities: list) -> None:
        now = self._clock()
        self._merge(room_id, (delivered_patch(room_id, e, now) for e in entities))

    def mark_failed(self, room_id: str, entities: list) -> None:
        now = self._clock()
        self._merge(room_id, (failed_patch(room_id, e, now) for e in entities))

    def rooms_with_due_events(self) -> set[str]:
        with storage_faults():
            return {
                e["PartitionKey"]
                for e in self._table.query_entities(
                    "RowKey gt @low and RowKey lt @high and State eq @pending and NextAttemptAt le @now",
                    parameters={"low": self._low, "high": self._high, "pending": PENDING, "now": self._clock()},
                    select=["PartitionKey"],
                )
            }

    def history(
        self, *, room_id: str | None = None, server_call_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[OutgoingEvent]:
        query = ["RowKey gt @low and RowKey lt @high"]
        parameters: dict = {"low": self._low, "high": self._high}
        for clause, name, value in (
            ("PartitionKey eq @room", "room", room_id),
            ("ServerCallId eq @call", "call", server_call_id),
            ("EventTime ge @since", "since", since),
            ("EventTime lt @until", "until", until),
        ):
            if value is not None:
                query.append(clause)
                parameters[name] = value
        with storage_faults():
            rows = list(self._table.query_entities(" and ".join(query), parameters=parameters))
        rows.sort(key=lambda e: (e["PartitionKey"], e["RowKey"]))
        return [event for row in rows for event in events_from_entity(row)]
