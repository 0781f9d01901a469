"""The one bounded retry for optimistic writes: re-run an attempt that lost an ETag race, with jittered back-off, then give up."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from ..core.errors import ChangeContended
from .transactions import ConcurrentChange

T = TypeVar("T")


@dataclass(frozen=True)
class ConflictRetry:
    """How many attempts a contended change gets, and how long it waits between them.

    The pause after attempt n is drawn from 0 to `first_pause * 2**n`, at most `max_pause` (full
    jitter): writers that collided spread out instead of colliding again in step.
    """

    attempts: int
    first_pause: float
    max_pause: float

    def run(self, attempt: Callable[[int], T], contended: str) -> T:
        """`attempt(number)` (0 first) again while it raises ConcurrentChange, at most `attempts` times.

        Raises ChangeContended with the message `contended` once every attempt lost its race.
        """
        for number in range(self.attempts):
            try:
                return attempt(number)
            except ConcurrentChange:
                if number + 1 < self.attempts:
                    time.sleep(self.pause(number))
        raise ChangeContended(contended)

    def pause(self, number: int) -> float:
        return random.uniform(0, min(self.max_pause, self.first_pause * 2 ** min(number, 30)))
