"""Repeatable requests (`Repeatability-Request-ID` / `Repeatability-First-Sent`) as ACS defines them.

The first request with an id runs; a repeat with the same fingerprint gets the first answer again;
a repeat with another body is refused. The first request reserves its outcome's key (e.g. the room
id) before it runs, so a request interrupted half-way can be finished by its retry instead of
running twice.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Callable, Mapping

from ..core.clock import Clock
from ..core.errors import (
    ChangeContended,
    InvalidRequest,
    OriginalRequestInProgress,
    RepeatabilityWindowPassed,
    RequestIdReused,
)
from ..storage.retry import ConflictRetry
from ..storage.transactions import ConcurrentChange
from ..core.timefmt import parse_imf_fixdate
from .store import Attempt, RepeatabilityStore, StoredResponse

REQUEST_ID_HEADER = "repeatability-request-id"
FIRST_SENT_HEADER = "repeatability-first-sent"
# A first attempt that has not finished after this long is presumed dead; its retry takes over.
STALE_AFTER = timedelta(seconds=30)
# A repeat waits this long (about 5 s) for the first request with its id to finish.
WAIT_FOR_FIRST = ConflictRetry(attempts=100, first_pause=0.1, max_pause=0.1)


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
    """Runs a repeatable operation at most once per request id (attempts kept in a RepeatabilityStore)."""

    def __init__(self, store: RepeatabilityStore, clock: Clock, window: timedelta) -> None:
        self._store = store
        self._clock = clock
        self.window = window

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
        attempt = Attempt(request_id, request_fingerprint, reserve(), self._clock())
        absent = True  # no record of the id seen yet: this request may be the first

        def take_or_replay(_number: int) -> tuple[Attempt | None, StoredResponse | None]:
            """The attempt this request runs under (its own, or a stale one it claimed), or the stored answer."""
            nonlocal absent, attempt
            if absent:
                attempt = replace(attempt, started_at=self._clock())
                if self._store.reserve(attempt):
                    return attempt, None
            stored = self._store.get(request_id)
            absent = stored is None
            if absent:  # the first attempt failed with a 5xx and gave way: this one runs instead
                raise ConcurrentChange(request_id)
            if stored.fingerprint != request_fingerprint:
                raise RequestIdReused()
            if stored.response is not None:
                return None, stored.response
            if self._clock() - stored.started_at > STALE_AFTER:
                # Take over a stale attempt; only one retry wins the store's ETag race.
                claimed = self._store.claim(stored, self._clock())
                if claimed is not None:
                    return claimed, None
            raise ConcurrentChange(request_id)  # the first attempt holds the id: wait for its answer

        try:
            running, answer = WAIT_FOR_FIRST.run(take_or_replay, "The first request with this id is still running.")
        except ChangeContended:
            raise OriginalRequestInProgress() from None
        if answer is not None:
            return answer, True
        if running is not attempt:  # a stale first attempt may have completed without recording its answer
            recovered = recover(running.reservation)
            if recovered is not None:
                self._store.finish(running, recovered)
                return recovered, True
        return self._finish(running, execute), False

    def _finish(self, attempt: Attempt, execute: Callable[[str], StoredResponse]) -> StoredResponse:
        try:
            response = execute(attempt.reservation)
        except Exception:
            self._store.forget(attempt.request_id)
            raise
        if response.status >= 500:
            self._store.forget(attempt.request_id)  # ACS re-executes a repeat of a request that failed on its side
        else:
            self._store.finish(attempt, response)
        return response

    def sweep(self) -> int:
        """Delete records older than the window (plus a margin): repeats that old get 412 anyway."""
        return self._store.sweep(self._clock() - self.window - STALE_AFTER)
