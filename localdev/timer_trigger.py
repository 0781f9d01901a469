"""Timer trigger adapter: runs each timer function on its schedule, one run at a time."""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Awaitable, Callable

from azure.functions.timer import TimerRequest

from .invocation import HostedFunction
from .schedules import Schedule, parse_schedule

log = logging.getLogger("localdev.timer")

Clock = Callable[[], datetime.datetime]
Sleep = Callable[[float], Awaitable[None]]

# A run that starts later than this after its due time is reported as past due.
PAST_DUE_AFTER = datetime.timedelta(seconds=1)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class TimerJob:
    """The schedule loop of one timer function.

    Runs are awaited one after another, so a run never overlaps the previous
    one; the next due time is computed after a run ends (as the host does),
    which skips occurrences missed while it was running.
    """

    def __init__(self, function: HostedFunction, schedule: Schedule, *,
                 run_on_startup: bool = False, clock: Clock = utc_now,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.function = function
        self.schedule = schedule
        self.run_on_startup = run_on_startup
        self.clock = clock
        self.sleep = sleep
        self.last_run: datetime.datetime | None = None
        self.runs = 0
        self.failures = 0

    async def run_once(self, due: datetime.datetime | None) -> None:
        """One invocation with a real TimerRequest; errors are logged, never raised."""
        started = self.clock()
        past_due = due is not None and started - due > PAST_DUE_AFTER
        status = {
            "Last": (self.last_run or datetime.datetime.min).isoformat(),
            "Next": self.schedule.next_after(started).isoformat(),
            "LastUpdated": started.isoformat(),
        }
        request = TimerRequest(past_due=past_due, schedule_status=status,
                               schedule={"AdjustForDST": True})
        self.runs += 1
        try:
            await self.function.invoke(request)
        except Exception:
            self.failures += 1
            log.exception("timer function %s failed", self.function.name)
        self.last_run = started

    async def run_forever(self) -> None:
        if self.run_on_startup:
            await self.run_once(None)
        due = self.schedule.next_after(self.clock())
        while True:
            remaining = (due - self.clock()).total_seconds()
            if remaining > 0:
                await self.sleep(remaining)
                continue  # event-loop timers may wake a little early: re-check
            await self.run_once(due)
            due = self.schedule.next_after(max(self.clock(), due))


class TimerTriggerAdapter:
    """Collects `timerTrigger` functions and runs their jobs while the host is up."""

    binding_type = "timerTrigger"

    def __init__(self, clock: Clock = utc_now, sleep: Sleep = asyncio.sleep) -> None:
        self.jobs: list[TimerJob] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._clock = clock
        self._sleep = sleep

    def add(self, function: HostedFunction) -> None:
        trigger = function.trigger
        # Parse now so a bad schedule fails at start-up, as in the real host.
        schedule = parse_schedule(trigger.schedule)
        self.jobs.append(TimerJob(function, schedule, run_on_startup=bool(trigger.run_on_startup),
                                  clock=self._clock, sleep=self._sleep))
        log.info("%s: timer %r (next %s)", function.name, trigger.schedule,
                 schedule.next_after(self._clock()).isoformat())

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(job.run_forever(), name=f"timer:{job.function.name}")
                       for job in self.jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
