"""Call Automation callbacks: written to the outbox with each call change, delivered to each callback URI at least once."""
from __future__ import annotations

import json
import logging
from typing import Protocol

import requests

from ..calls.changes import CallChange
from ..core.clock import Clock
from ..events.dispatcher import Dispatcher
from ..events.model import OutgoingEvent
from ..events.outbox import CALLBACK_PREFIX, Outbox, events_from_entity, outbox_entities
from .model import callbacks_for_change, cloud_event
from .signing import CallbackSigner

log = logging.getLogger("anteroom.callbacks")


class CallbackSender(Protocol):
    def post(self, uri: str, events: list[OutgoingEvent]) -> None:
        """Deliver these events to `uri` in one request, or raise."""


class HttpCallbackSender:
    """POSTs a JSON array of CloudEvents, as ACS does; anything but a 2xx answer is a failure.

    With a signer, each request carries its own `Authorization: Bearer <JWT>`, as ACS's do.
    """

    def __init__(self, signer: CallbackSigner | None = None, timeout: float = 30.0) -> None:
        self._signer = signer
        self._timeout = timeout

    def post(self, uri: str, events: list[OutgoingEvent]) -> None:
        headers = {"Content-Type": "application/json"}
        if self._signer is not None:
            # Minted per attempt: a retry hours later must not carry an expired token.
            headers["Authorization"] = f"Bearer {self._signer.token()}"
        response = requests.post(
            uri,
            data=json.dumps([cloud_event(event) for event in events]),
            headers=headers,
            timeout=self._timeout,
        )
        response.raise_for_status()


class CallbackDispatcher(Dispatcher):
    """The outbox dispatcher (background notify, timer sweep), sending `cb|` rows to their Destination.

    Rows go out in commit order; once a destination fails, its later rows wait for the next attempt
    so an application never sees a room's callbacks out of order. Other destinations carry on.
    """

    def __init__(self, outbox: Outbox, sender: CallbackSender) -> None:
        super().__init__(outbox, sink=None)
        self._sender = sender

    def dispatch_room(self, room_id: str) -> int:
        with self._lock_for(room_id):
            pending = self._outbox.pending(room_id)
            failed_destinations: set[str] = set()
            delivered, failed = [], []
            for row in pending:
                destination = row["Destination"]
                if destination in failed_destinations:
                    failed.append(row)
                    continue
                try:
                    self._sender.post(destination, events_from_entity(row))
                    delivered.append(row)
                except Exception as error:
                    log.warning("callback to %s failed (%s); it will be retried", destination, error)
                    failed_destinations.add(destination)
                    failed.append(row)
            return self._settle(room_id, delivered, failed)


class CallbackPublisher:
    """CallChangeListener: a change's callbacks go to the outbox (`cb|` rows, one row set per callback
    URI) in the change's own transaction; the callback dispatcher posts them once it committed."""

    def __init__(self, dispatcher: Dispatcher, clock: Clock) -> None:
        self._dispatcher = dispatcher
        self._clock = clock

    def entities(self, change: CallChange) -> list[dict]:
        after = change.after
        by_destination: dict[str, list] = {}
        for callback in callbacks_for_change(change.before, after, change.changed, self._clock()):
            by_destination.setdefault(callback.destination, []).append(callback.event)
        rows: list[dict] = []
        for destination, events in by_destination.items():
            rows += outbox_entities(
                after.room_id, after.sequence, after.server_call_id, events,
                prefix=CALLBACK_PREFIX, destination=destination, first_index=len(rows),
            )
        return rows

    def committed(self, change: CallChange, entities: list[dict]) -> None:
        if entities:
            self._dispatcher.notify(change.room_id)
