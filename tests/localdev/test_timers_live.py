"""Timer functions run by a real host on the real clock."""

import asyncio
import threading
import time

import azure.functions as func
import pytest

from localdev.host import FunctionHost
from localdev.settings import HostConfig


class Record:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}
        self.active = 0
        self.max_active = 0

    def note(self, name, timer):
        with self.lock:
            self.calls.setdefault(name, []).append((time.monotonic(), timer))


def create_timer_app(record):
    app = func.FunctionApp()

    @app.timer_trigger(schedule="* * * * * *", arg_name="timer", run_on_startup=True)
    def every_second(timer: func.TimerRequest) -> None:
        record.note("every_second", timer)

    @app.timer_trigger(schedule="00:00:01", arg_name="timer")
    async def interval(timer: func.TimerRequest) -> None:
        record.note("interval", timer)

    @app.timer_trigger(schedule="* * * * * *", arg_name="timer", run_on_startup=True)
    def slow(timer: func.TimerRequest) -> None:
        with record.lock:
            record.active += 1
            record.max_active = max(record.max_active, record.active)
        time.sleep(1.2)
        with record.lock:
            record.active -= 1
        record.note("slow", timer)

    @app.timer_trigger(schedule="* * * * * *", arg_name="timer")
    def failing(timer: func.TimerRequest) -> None:
        record.note("failing", timer)
        raise RuntimeError("timer went wrong")

    @app.route(route="ping", auth_level=func.AuthLevel.ANONYMOUS)
    def ping(req: func.HttpRequest) -> str:
        return "pong"

    return app


@pytest.mark.asyncio(loop_scope="session")
async def test_timers_run_on_schedule_without_overlap_and_survive_errors(caplog):
    record = Record()
    host = FunctionHost(create_timer_app(record), HostConfig())
    assert set(host.adapters) == {"httpTrigger", "timerTrigger"}
    await host.start(https_port=None, http_port=0)
    try:
        await asyncio.sleep(2.7)
    finally:
        await host.stop()
    calls = record.calls
    assert len(calls["every_second"]) >= 3  # start-up run + one per second
    assert all(isinstance(timer, func.TimerRequest) for _, timer in calls["every_second"])
    assert calls["every_second"][0][1].past_due is False
    assert 2 <= len(calls["interval"]) <= 3
    assert record.max_active == 1
    assert 1 <= len(calls["slow"]) <= 3
    assert len(calls["failing"]) >= 2
    assert "RuntimeError: timer went wrong" in caplog.text
