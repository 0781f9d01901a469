"""The one bounded retry on ETag conflicts: attempts counted, pauses jittered within their cap, ChangeContended at the end."""
import pytest

from shared.core.errors import ChangeContended, RoomNotFound
from shared.storage import retry
from shared.storage.retry import ConflictRetry
from shared.storage.transactions import ConcurrentChange


@pytest.fixture
def pauses(monkeypatch):
    slept = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    return slept


def test_an_attempt_that_wins_its_race_is_answered(pauses):
    def attempt(number):
        if number < 2:
            raise ConcurrentChange("room")
        return f"committed on attempt {number}"

    assert ConflictRetry(attempts=5, first_pause=0.01, max_pause=0.1).run(attempt, "busy") == "committed on attempt 2"
    assert len(pauses) == 2


def test_every_attempt_lost_is_change_contended_with_the_callers_message(pauses):
    numbers = []

    def attempt(number):
        numbers.append(number)
        raise ConcurrentChange("room")

    with pytest.raises(ChangeContended) as caught:
        ConflictRetry(attempts=4, first_pause=0.01, max_pause=0.03).run(attempt, "The room is changing too often; retry later.")
    assert caught.value.message == "The room is changing too often; retry later."
    assert numbers == [0, 1, 2, 3] and len(pauses) == 3  # no pause after the last attempt
    assert all(0 <= pause <= cap for pause, cap in zip(pauses, (0.01, 0.02, 0.03)))


def test_other_errors_are_not_retried(pauses):
    def attempt(number):
        raise RoomNotFound("99000000000000001")

    with pytest.raises(RoomNotFound):
        ConflictRetry(attempts=4, first_pause=0.01, max_pause=0.1).run(attempt, "busy")
    assert pauses == []
