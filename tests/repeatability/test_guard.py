"""Repeatability rules on the store's in-memory twin: run once, replay, refuse another body, run again after a 5xx, take over a stale attempt."""
import threading
from datetime import datetime, timedelta, timezone

import pytest

from shared.core.clock import ManualClock
from functions.errors import ROOMS_ERRORS
from shared.core.errors import DomainError
from shared.storage.retry import ConflictRetry
from shared.repeatability import guard as guard_module
from shared.repeatability.guard import STALE_AFTER, RepeatabilityGuard
from shared.repeatability.memory import MemoryRepeatabilityStore
from shared.repeatability.store import Attempt, StoredResponse
from shared.storage.memory import MemoryTable

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
REQUEST = "5b8a3f0e-8d5e-4a43-b3a6-3a4d2f1e0c9b"
CREATED = StoredResponse(201, {"id": "room-1"}, {"Location": "/rooms/room-1"})


@pytest.fixture
def clock():
    return ManualClock(NOW)


@pytest.fixture
def store():
    return MemoryRepeatabilityStore(MemoryTable())


@pytest.fixture
def guard(store, clock):
    return RepeatabilityGuard(store, clock, timedelta(minutes=5))


class Operation:
    """A repeatable operation that counts its runs; `answer` is what it answers, or raises."""

    def __init__(self, answer=CREATED, recovered=None):
        self.answer, self.recovered = answer, recovered
        self.keys: list[str] = []
        self.reserved = 0

    def reserve(self):
        self.reserved += 1
        return f"room-{self.reserved}"

    def execute(self, key):
        self.keys.append(key)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def recover(self, key):
        return self.recovered


def run(guard, operation, fingerprint="body-1"):
    return guard.run(REQUEST, fingerprint, operation.reserve, operation.execute, operation.recover)


def test_a_repeat_replays_the_first_answer_without_running_again(guard):
    operation = Operation()
    assert run(guard, operation) == (CREATED, False)
    assert run(guard, operation) == (CREATED, True)
    assert operation.keys == ["room-1"]


def test_a_client_error_is_replayed_too(guard):
    refused = StoredResponse(400, {"error": {"code": "BadRequest"}})
    operation = Operation(refused)
    run(guard, operation)
    assert run(guard, operation) == (refused, True) and len(operation.keys) == 1


def test_the_same_id_with_another_request_is_400(guard):
    run(guard, Operation())
    with pytest.raises(DomainError) as caught:
        run(guard, Operation(), fingerprint="body-2")
    assert ROOMS_ERRORS.http_error(caught.value).status == 400


@pytest.mark.parametrize("failure", [StoredResponse(503, None), RuntimeError("storage down")])
def test_after_a_failure_on_our_side_a_repeat_runs_again(guard, failure):
    failing = Operation(failure)
    if isinstance(failure, Exception):
        with pytest.raises(RuntimeError):
            run(guard, failing)
    else:
        assert run(guard, failing) == (failure, False)
    operation = Operation()
    assert run(guard, operation) == (CREATED, False) and operation.keys == ["room-1"]


def test_a_repeat_while_the_first_runs_waits_then_gets_409(guard, monkeypatch):
    monkeypatch.setattr(guard_module, "WAIT_FOR_FIRST", ConflictRetry(attempts=2, first_pause=0.1, max_pause=0.1))
    started, release = threading.Event(), threading.Event()

    def slow(key):
        started.set()
        release.wait(10)
        return CREATED

    first = threading.Thread(target=guard.run, args=(REQUEST, "body-1", lambda: "room-1", slow, lambda key: None))
    first.start()
    started.wait(10)
    try:
        with pytest.raises(DomainError) as caught:
            run(guard, Operation())
        assert ROOMS_ERRORS.http_error(caught.value).status == 409
    finally:
        release.set()
        first.join()
    assert run(guard, Operation()) == (CREATED, True)


def stale_first_attempt(store, clock):
    """A first attempt that reserved its key and died before answering."""
    store.reserve(Attempt(REQUEST, "body-1", "room-1", clock()))
    clock.advance(STALE_AFTER + timedelta(seconds=1))


def test_a_retry_finishes_a_stale_attempt_with_the_key_it_reserved(guard, store, clock):
    stale_first_attempt(store, clock)
    operation = Operation()
    assert run(guard, operation) == (CREATED, False)
    assert operation.keys == ["room-1"]  # the first attempt's key, not its own
    assert run(guard, Operation()) == (CREATED, True)


def test_a_retry_answers_for_a_stale_attempt_that_had_completed(guard, store, clock):
    stale_first_attempt(store, clock)
    operation = Operation(recovered=CREATED)
    assert run(guard, operation) == (CREATED, True) and operation.keys == []
    assert run(guard, Operation()) == (CREATED, True)


def test_the_sweep_forgets_attempts_older_than_the_window(guard, clock):
    run(guard, Operation())
    clock.advance(timedelta(minutes=5) + STALE_AFTER)
    assert guard.sweep() == 0
    clock.advance(timedelta(seconds=1))
    assert guard.sweep() == 1
    assert run(guard, Operation()) == (CREATED, False)
