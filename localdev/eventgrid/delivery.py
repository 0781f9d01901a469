"""Durable delivery state of the local topic: pending deliveries on disk, the retry schedule, dead letters, the log."""

from __future__ import annotations

import collections
import datetime
import json
import logging
import os
import shutil
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from shared.core.clock import utc_now

from ..files import write_atomically

log = logging.getLogger("localdev.eventgrid")

# Event Grid's documented retry schedule (seconds after a failed attempt); after the last step it
# keeps retrying every 12 hours until the attempts or the time to live run out.
RETRY_SCHEDULE = (10, 30, 60, 300, 600, 1800, 3600, 10800, 21600)
RETRY_AFTER_SCHEDULE = 43200
# Only these answers count as delivered.
SUCCESS_STATUSES = frozenset({200, 201, 202, 204})
# A webhook answering these is not retried: the event is dead-lettered (or dropped without dead-lettering).
NON_RETRIABLE_STATUSES = frozenset({400, 401, 403, 413})


def retry_delay(failed_attempts: int, time_scale: float) -> float:
    """Seconds to wait after the `failed_attempts`-th failure, scaled for tests."""
    step = RETRY_SCHEDULE[failed_attempts - 1] if failed_attempts <= len(RETRY_SCHEDULE) else RETRY_AFTER_SCHEDULE
    return step * time_scale


def isoformat(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class PendingDelivery:
    """One event on its way to one subscription (kept on disk until delivered or dead-lettered)."""

    delivery_id: str
    subscription: str
    event: dict[str, Any]  # already in the subscription's delivery schema
    event_id: str
    event_type: str
    publish_time: str
    expires_at: float  # epoch seconds: publish time + the subscription's (scaled) time to live
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_status: int | None = None
    last_outcome: str | None = None
    last_attempt_time: str | None = None
    last_answer: str | None = None  # the start of the subscriber's last answer body
    order: int = 0  # publish order across the topic's deliveries (first attempts go out in it)

    @classmethod
    def new(cls, subscription: str, event: dict[str, Any], event_id: str, event_type: str,
            published: datetime.datetime, ttl_seconds: float, order: int = 0) -> "PendingDelivery":
        return cls(uuid.uuid4().hex, subscription, event, event_id, event_type, isoformat(published),
                   published.timestamp() + ttl_seconds, next_attempt_at=published.timestamp(), order=order)


class DeliveryStore:
    """Pending deliveries as one JSON file each under `<root>/pending`, dead letters under `<root>/deadletter`.

    A publish is answered only after its deliveries are written, so a topic restarted (or killed)
    afterwards still delivers them; a delivery's file goes once it succeeded or was dead-lettered.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pending_dir = root / "pending"
        self.dead_letter_dir = root / "deadletter"
        self.pending_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, delivery_id: str) -> Path:
        return self.pending_dir / f"{delivery_id}.json"

    def save(self, delivery: PendingDelivery) -> None:
        write_atomically(self._path(delivery.delivery_id), json.dumps(asdict(delivery)).encode(), 0o644)

    def save_all(self, deliveries: Iterable[PendingDelivery]) -> None:
        for delivery in deliveries:
            self.save(delivery)

    def remove(self, delivery_id: str) -> None:
        self._path(delivery_id).unlink(missing_ok=True)

    def load(self) -> list[PendingDelivery]:
        deliveries = []
        for path in sorted(self.pending_dir.glob("*.json")):
            try:
                deliveries.append(PendingDelivery(**json.loads(path.read_text(encoding="utf-8"))))
            except (ValueError, TypeError):
                log.warning("ignoring unreadable pending delivery %s", path)
        return deliveries

    def dead_letter(self, delivery: PendingDelivery, reason: str) -> Path:
        """Write the event with Event Grid's dead-letter properties to `<deadletter>/<subscription>/`."""
        folder = self.dead_letter_dir / delivery.subscription
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            **delivery.event,
            "deadLetterReason": reason,
            "deliveryAttempts": delivery.attempts,
            "lastDeliveryOutcome": delivery.last_outcome,
            "lastHttpStatusCode": delivery.last_status,
            "publishTime": delivery.publish_time,
            "lastDeliveryAttemptTime": delivery.last_attempt_time,
        }
        path = folder / f"{delivery.event_id}-{delivery.delivery_id[:8]}.json"
        write_atomically(path, (json.dumps([record], indent=2) + "\n").encode(), 0o644)
        return path

    def clear(self) -> None:
        """Remove every pending delivery and dead letter."""
        for path in self.pending_dir.glob("*.json"):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.dead_letter_dir, ignore_errors=True)

    def dead_letters(self, subscription: str | None = None) -> list[dict[str, Any]]:
        folders = [self.dead_letter_dir / subscription] if subscription else \
            sorted(p for p in self.dead_letter_dir.glob("*") if p.is_dir())
        return [record for folder in folders for path in sorted(folder.glob("*.json"))
                for record in json.loads(path.read_text(encoding="utf-8"))]


class DeliveryLog:
    """Every attempt, validation and dead-letter as a JSON line; the most recent are kept in memory too."""

    def __init__(self, path: Path, keep: int = 50_000) -> None:
        self.path = path
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        # Called with each entry once written (the console follows deliveries this way); a listener
        # that raises is logged and skipped.
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record: Any) -> dict[str, Any]:
        entry = {"time": isoformat(utc_now()), **record}
        line = json.dumps(entry) + "\n"
        with self._lock:
            self._recent.append(entry)
            # O_APPEND keeps lines whole even if two topics share a file.
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(descriptor, line.encode())
            finally:
                os.close(descriptor)
        for listener in list(self.listeners):
            try:
                listener(entry)
            except Exception:
                log.exception("a delivery log listener failed")
        return entry

    def clear(self) -> None:
        """Forget every entry, in memory and in the file."""
        with self._lock:
            self._recent.clear()
            self.path.write_bytes(b"")

    def entries(self, **filters: str) -> list[dict[str, Any]]:
        with self._lock:
            recent = list(self._recent)
        return [e for e in recent if all(str(e.get(k)) == v for k, v in filters.items() if v is not None)]
