"""The event dispatcher keeps no state per room it has served: a long-lived instance serves rooms without end."""
from __future__ import annotations

import tracemalloc

from shared.events.dispatcher import Dispatcher


class EmptyOutbox:
    def pending(self, room_id: str) -> list:
        return []


def test_serving_many_rooms_does_not_grow_memory():
    dispatcher = Dispatcher(EmptyOutbox(), sink=None)
    room_ids = [f"room-{index:06d}" for index in range(20_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for room_id in room_ids:
            dispatcher.dispatch_room(room_id)
        grown = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"{grown} bytes kept after serving {len(room_ids)} rooms"
