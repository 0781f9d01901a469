"""The token-bucket throttle: burst, steady rate, Retry-After, per-caller budgets, bounded memory."""
import pytest

from shared.auth import throttle as throttle_module
from functions.errors import ROOMS_ERRORS, HttpError
from shared.core.errors import Throttled
from shared.config.settings import Settings, SettingsError
from shared.auth.throttle import Throttle


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(throttle: Throttle, caller: str) -> HttpError:
    with pytest.raises(Throttled) as caught:
        throttle.admit(caller)
    return ROOMS_ERRORS.http_error(caught.value)


def test_burst_then_429_with_retry_after():
    clock = FakeMonotonic()
    throttle = Throttle(limit=5, window_seconds=10, monotonic=clock)
    for _ in range(5):
        throttle.admit("key:0")
    error = refused(throttle, "key:0")
    assert error.status == 429 and error.code == "TooManyRequests"
    assert error.headers == {"Retry-After": "2"}  # one token comes back every 2 s
    assert error.to_body()["error"]["message"]


def test_budget_refills_at_the_steady_rate():
    clock = FakeMonotonic()
    throttle = Throttle(limit=5, window_seconds=10, monotonic=clock)
    for _ in range(5):
        throttle.admit("key:0")
    clock.now += 1.9
    refused(throttle, "key:0")
    clock.now += 0.1
    throttle.admit("key:0")
    refused(throttle, "key:0")
    clock.now += 3600  # a long pause refills to the limit, not beyond
    for _ in range(5):
        throttle.admit("key:0")
    refused(throttle, "key:0")


def test_retry_after_is_whole_seconds_rounded_up():
    clock = FakeMonotonic()
    throttle = Throttle(limit=3, window_seconds=1, monotonic=clock)
    for _ in range(3):
        throttle.admit("a")
    assert refused(throttle, "a").headers["Retry-After"] == "1"


def test_callers_have_separate_budgets():
    clock = FakeMonotonic()
    throttle = Throttle(limit=2, window_seconds=60, monotonic=clock)
    throttle.admit("key:0")
    throttle.admit("key:0")
    refused(throttle, "key:0")
    throttle.admit("key:1")
    throttle.admit("user:8:acs:x")


def test_tracked_callers_are_bounded(monkeypatch):
    monkeypatch.setattr(throttle_module, "MAX_TRACKED_CALLERS", 10)
    clock = FakeMonotonic()
    throttle = Throttle(limit=2, window_seconds=60, monotonic=clock)
    for index in range(50):
        throttle.admit(f"user:{index}")
        throttle.admit(f"user:{index}")
    assert len(throttle._buckets) <= 10


def test_settings_read_and_check_the_throttle():
    base = {
        "ANTEROOM_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
        "ANTEROOM_ACCESS_KEY": "a" * 24,
        "ANTEROOM_RESOURCE_ID": "6b2f3c1e-1d2a-4f55-9a0e-0f8a3c1d2b4e",
        "ANTEROOM_TOKEN_SIGNING_KEY": "b" * 24,
        "WEBSITE_HOSTNAME": "rooms.example",
    }
    defaults = Settings.from_env(base)
    assert (defaults.throttle_requests, defaults.throttle_window_seconds) == (6000, 60)
    off = Settings.from_env({**base, "ANTEROOM_THROTTLE_REQUESTS": "0"})
    assert off.throttle_requests == 0
    with pytest.raises(SettingsError, match="THROTTLE_WINDOW_SECONDS"):
        Settings.from_env({**base, "ANTEROOM_THROTTLE_WINDOW_SECONDS": "0"})
    with pytest.raises(SettingsError, match="THROTTLE_REQUESTS"):
        Settings.from_env({**base, "ANTEROOM_THROTTLE_REQUESTS": "many"})
