"""Per-caller request throttling (token buckets in process memory), answered as ACS does: 429 with Retry-After."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..core.errors import Throttled

# Idle callers' buckets are forgotten once this many callers are tracked, so a flood of distinct
# callers (one bucket per user token) cannot grow memory without bound.
MAX_TRACKED_CALLERS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Throttle:
    """Allows each caller `limit` requests per `window_seconds`, refilled continuously.

    A burst of up to `limit` requests passes at once; after that requests pass at the steady
    rate `limit / window_seconds`. State lives in this process only: with several instances
    each one applies the limit on its own (see README, Hardening).
    """

    def __init__(self, limit: int, window_seconds: float, monotonic: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window_seconds = window_seconds
        self._rate = limit / window_seconds
        self._monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def admit(self, caller: str) -> None:
        """Count one request of `caller`; raise Throttled when its budget is spent."""
        with self._lock:
            now = self._monotonic()
            bucket = self._buckets.get(caller)
            if bucket is None:
                if len(self._buckets) >= MAX_TRACKED_CALLERS:
                    self._forget_idle(now)
                bucket = self._buckets[caller] = _Bucket(float(self.limit), now)
            else:
                bucket.tokens = min(float(self.limit), bucket.tokens + (now - bucket.updated) * self._rate)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = (1.0 - bucket.tokens) / self._rate
        # Whole seconds, rounded up: Retry-After has no fractions, and an early retry would be refused again.
        raise Throttled(max(1, math.ceil(wait)))

    def _forget_idle(self, now: float) -> None:
        full = [caller for caller, bucket in self._buckets.items()
                if bucket.tokens + (now - bucket.updated) * self._rate >= self.limit]
        for caller in full:
            del self._buckets[caller]
        if len(self._buckets) >= MAX_TRACKED_CALLERS:
            # Everyone is busy: drop the least recently seen half rather than refuse to track.
            oldest = sorted(self._buckets, key=lambda caller: self._buckets[caller].updated)
            for caller in oldest[: len(oldest) // 2]:
                del self._buckets[caller]
