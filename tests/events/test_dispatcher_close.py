"""Closing the event dispatcher: bounded in all, even when every publishing thread is stuck."""
from __future__ import annotations

import threading
import time

from shared.events.dispatcher import Dispatcher


class OneEventOutbox:
    def pending(self, room_id: str) -> list:
        return [{"RowKey": room_id}]


class SilentSink:
    """An endpoint that accepts the connection and never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def send(self, events) -> None:
        self.entered.release()
        self.release.wait()


def test_close_waits_its_timeout_once_not_once_per_stuck_thread(monkeypatch):
    monkeypatch.setattr("shared.events.dispatcher.events_from_entity", lambda entity: [entity])
    sink = SilentSink()
    dispatcher = Dispatcher(OneEventOutbox(), sink, workers=4)
    for index in range(4):
        dispatcher.notify(f"room-{index}")
    for _ in range(4):
        assert sink.entered.acquire(timeout=5)  # all four threads are stuck in send
    started = time.monotonic()
    dispatcher.close(timeout=0.5)
    elapsed = time.monotonic() - started
    sink.release.set()
    assert elapsed < 1.5, f"close took {elapsed:.1f} s for a 0.5 s timeout"
