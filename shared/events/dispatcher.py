"""Publishes outbox events to Event Grid: right after each commit, and from a timer as the safety net."""
from __future__ import annotations

import logging
import queue
import threading
import time
import zlib
from typing import Callable, Protocol

from azure.core.credentials import AzureKeyCredential, TokenCredential
from azure.core.tracing.common import with_current_context

from .model import OutgoingEvent, envelope
from .outbox import Outbox, events_from_entity

log = logging.getLogger("anteroom.events")
ROOM_LOCK_STRIPES = 64


class EventSink(Protocol):
    def send(self, events: list[OutgoingEvent]) -> None:
        """Deliver these events in this order, or raise."""


class EventGridSink:
    """azure-eventgrid's EventGridPublisherClient to one topic, in either schema (client built on first use).

    `key` is the topic's access key, or an Entra token credential: the client then sends a Bearer
    token for https://eventgrid.azure.net/.default (the identity needs EventGrid Data Sender).
    """

    def __init__(self, endpoint: str, key: str | TokenCredential, schema: str, resource: str) -> None:
        self._endpoint, self._key, self.schema, self._resource = endpoint, key, schema, resource
        self._client = None
        self._lock = threading.Lock()

    def _publisher(self):
        with self._lock:
            if self._client is None:
                from azure.eventgrid import EventGridPublisherClient

                credential = AzureKeyCredential(self._key) if isinstance(self._key, str) else self._key
                self._client = EventGridPublisherClient(self._endpoint, credential)
            return self._client

    def convert(self, event: OutgoingEvent) -> dict:
        # The exact envelope ACS delivers (7-digit eventTime, metadataVersion, datacontenttype): the
        # client sends dicts in either schema as they are, where its models would reformat the time.
        return envelope(event, self.schema, self._resource)

    def send(self, events: list[OutgoingEvent]) -> None:
        self._publisher().send([self.convert(event) for event in events])

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class Dispatcher:
    """Moves a room's pending events to the sink, in commit order, one batch per room.

    `notify(room)` hands the work to background threads so the request that committed does not
    wait for Event Grid; `sweep()` (timer) retries whatever a crash or an outage left behind.
    Delivery is at least once: an event whose batch failed is sent again with the same id.
    """

    def __init__(self, outbox: Outbox, sink: EventSink, workers: int = 4) -> None:
        self._outbox = outbox
        self._sink = sink
        # Each room id with the publish to run for it, bound to the tracing context of the request
        # that committed: its Event Grid call is a span under that request's.
        self._queue: queue.Queue[tuple[str, Callable[[str], int]] | None] = queue.Queue()
        # Several rooms publish at once (one publish is a few round trips); the per-room lock keeps
        # each room's batches one at a time and in commit order.
        self._workers = workers
        self._threads: list[threading.Thread] = []
        # A fixed set of locks, a room always on the same one: a lock per room ever seen would
        # grow for the whole life of the instance. Two rooms sharing a lock only wait a little.
        self._room_locks = [threading.Lock() for _ in range(ROOM_LOCK_STRIPES)]
        self._locks_lock = threading.Lock()

    def _lock_for(self, room_id: str) -> threading.Lock:
        return self._room_locks[zlib.crc32(room_id.encode()) % ROOM_LOCK_STRIPES]

    def notify(self, room_id: str) -> None:
        if not self._threads:
            with self._locks_lock:
                if not self._threads:
                    self._threads = [threading.Thread(target=self._run, name=f"event-dispatcher-{i}", daemon=True)
                                     for i in range(self._workers)]
                    for thread in self._threads:
                        thread.start()
        self._queue.put((room_id, with_current_context(self.dispatch_room)))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            room_id, dispatch = item
            try:
                dispatch(room_id)
            except Exception:
                log.exception("publishing events of room %s failed; the sweep will retry", room_id)

    def dispatch_room(self, room_id: str) -> int:
        """Publish the room's pending events; returns how many went out. Raises if the sink fails."""
        with self._lock_for(room_id):
            pending = self._outbox.pending(room_id)
            if not pending:
                return 0
            try:
                self._sink.send([event for entity in pending for event in events_from_entity(entity)])
            except Exception:
                self._outbox.mark_failed(room_id, pending)
                raise
            self._outbox.mark_delivered(room_id, pending)
            return len(pending)

    def _settle(self, room_id: str, delivered: list, failed: list) -> int:
        """Record one pass over a room's rows: these done, those to try again later; answers how many were done."""
        if delivered:
            self._outbox.mark_delivered(room_id, delivered)
        if failed:
            self._outbox.mark_failed(room_id, failed)
        return len(delivered)

    def sweep(self) -> int:
        sent = 0
        for room_id in self._outbox.rooms_with_due_events():
            try:
                sent += self.dispatch_room(room_id)
            except Exception:
                log.warning("events of room %s still not delivered; retrying later", room_id, exc_info=True)
        return sent

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads, waiting `timeout` seconds in all (not per thread) for batches under way.

        A thread stuck on a silent endpoint is left behind (threads are daemons); its events stay
        pending in the outbox, so the sweep sends them again.
        """
        deadline = time.monotonic() + timeout
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
