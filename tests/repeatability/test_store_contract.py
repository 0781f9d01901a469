"""The RepeatabilityStore contract, on the in-memory twin and on TableRepeatabilityStore on Azurite: reserve, finish, replay, claim a stale attempt, forget, sweep."""
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.repeatability.memory import MemoryRepeatabilityStore
from shared.repeatability.store import Attempt, StoredResponse, TableRepeatabilityStore

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
REQUEST = "5b8a3f0e-8d5e-4a43-b3a6-3a4d2f1e0c9b"


@pytest.fixture
def store(storage):
    return storage.build(MemoryRepeatabilityStore, TableRepeatabilityStore)


def attempt(request_id=REQUEST, started_at=T0) -> Attempt:
    return Attempt(request_id, "fingerprint", "99000000000000001", started_at)


def test_the_first_reservation_of_an_id_wins(store):
    assert store.reserve(attempt())
    assert not store.reserve(replace(attempt(), fingerprint="another", reservation="99000000000000002"))
    stored = store.get(REQUEST)
    assert stored.etag and replace(stored, etag="") == attempt()
    assert store.get("00000000-0000-0000-0000-000000000000") is None


def test_a_finished_attempt_replays_its_answer(store):
    store.reserve(attempt())
    answer = StoredResponse(201, {"id": "99000000000000001", "nested": [1, None]}, {"Location": "/rooms/99000000000000001"})
    store.finish(store.get(REQUEST), answer)
    stored = store.get(REQUEST)
    assert (stored.response, stored.reservation, stored.started_at) == (answer, "99000000000000001", T0)
    store.finish(stored, StoredResponse(400, None))
    assert store.get(REQUEST).response == StoredResponse(400, None)


def test_only_one_retry_claims_a_stale_attempt(store):
    store.reserve(attempt())
    read_by_one, read_by_other = store.get(REQUEST), store.get(REQUEST)
    claimed = store.claim(read_by_one, T0 + timedelta(minutes=1))
    assert claimed.started_at == T0 + timedelta(minutes=1) and claimed.etag != read_by_one.etag
    assert store.claim(read_by_other, T0 + timedelta(minutes=1)) is None
    assert store.get(REQUEST) == claimed
    # The winner finishes it from its claim.
    store.finish(claimed, StoredResponse(201, {}))
    assert store.get(REQUEST).response == StoredResponse(201, {})


def test_a_forgotten_attempt_cannot_be_claimed_and_the_id_is_free_again(store):
    store.reserve(attempt())
    read = store.get(REQUEST)
    store.forget(REQUEST)
    assert store.get(REQUEST) is None and store.claim(read, T0) is None
    store.forget(REQUEST)  # forgetting again is no error
    assert store.reserve(attempt())


def test_the_sweep_removes_attempts_started_before_the_cutoff(store):
    old, recent = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    store.reserve(attempt(old, T0))
    store.reserve(attempt(recent, T0 + timedelta(minutes=10)))
    store.finish(store.get(old), StoredResponse(201, {}))
    assert store.sweep(T0 + timedelta(minutes=5)) == 1
    assert store.get(old) is None and store.get(recent) is not None
    assert store.sweep(T0 + timedelta(minutes=5)) == 0
