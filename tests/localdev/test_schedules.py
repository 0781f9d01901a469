"""NCRONTAB/TimeSpan schedules and the timer loop, driven by an injected clock."""

import asyncio
import datetime as dt

import pytest

from localdev.schedules import (CronSchedule, IntervalSchedule, ScheduleError, parse_cron_field,
                                parse_schedule)
from localdev.timer_trigger import TimerJob

UTC = dt.timezone.utc
START = dt.datetime(2024, 1, 31, 23, 59, 58, 500000, tzinfo=UTC)


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def occurrences(expression, start=START, count=3):
    schedule = parse_schedule(expression)
    found, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment)
        found.append(moment.isoformat().replace("+00:00", ""))
    return found


@pytest.mark.parametrize("expression, expected", [
    ("* * * * * *", ["2024-01-31T23:59:59", "2024-02-01T00:00:00", "2024-02-01T00:00:01"]),
    ("*/20 * * * * *", ["2024-02-01T00:00:00", "2024-02-01T00:00:20", "2024-02-01T00:00:40"]),
    ("15/20 * * * * *", ["2024-02-01T00:00:15", "2024-02-01T00:00:35", "2024-02-01T00:00:55"]),
    ("0 */5 * * * *", ["2024-02-01T00:00:00", "2024-02-01T00:05:00", "2024-02-01T00:10:00"]),
    ("0 0 * * * *", ["2024-02-01T00:00:00", "2024-02-01T01:00:00", "2024-02-01T02:00:00"]),
    ("0 30 9 * * 1-5", ["2024-02-01T09:30:00", "2024-02-02T09:30:00", "2024-02-05T09:30:00"]),
    ("0 30 9 * * MON-FRI", ["2024-02-01T09:30:00", "2024-02-02T09:30:00", "2024-02-05T09:30:00"]),
    ("0 0 12 * * 0,6", ["2024-02-03T12:00:00", "2024-02-04T12:00:00", "2024-02-10T12:00:00"]),
    ("0 0 12 * * 7", ["2024-02-04T12:00:00", "2024-02-11T12:00:00", "2024-02-18T12:00:00"]),
    ("0 0 0 1 */3 *", ["2024-04-01T00:00:00", "2024-07-01T00:00:00", "2024-10-01T00:00:00"]),
    ("0 0 0 29 FEB *", ["2024-02-29T00:00:00", "2028-02-29T00:00:00", "2032-02-29T00:00:00"]),
    ("0 0 0 31 * *", ["2024-03-31T00:00:00", "2024-05-31T00:00:00", "2024-07-31T00:00:00"]),
    # Both day fields must match (NCrontab), so this is "Friday the 13th".
    ("0 0 0 13 * 5", ["2024-09-13T00:00:00", "2024-12-13T00:00:00", "2025-06-13T00:00:00"]),
    ("5,10-12 0 0 * * *", ["2024-02-01T00:00:05", "2024-02-01T00:00:10", "2024-02-01T00:00:11"]),
    ("00:05:00", ["2024-02-01T00:04:58.500000", "2024-02-01T00:09:58.500000",
                  "2024-02-01T00:14:58.500000"]),
    ("1.00:00:00", ["2024-02-01T23:59:58.500000", "2024-02-02T23:59:58.500000",
                    "2024-02-03T23:59:58.500000"]),
])
def test_next_occurrences(expression, expected):
    assert occurrences(expression) == expected


def test_occurrence_is_strictly_after_the_given_moment():
    schedule = parse_schedule("0 * * * * *")
    assert schedule.next_after(at("2024-01-01T10:00:00")) == at("2024-01-01T10:01:00")


def test_other_time_zones_are_converted_to_utc():
    plus_two = dt.timezone(dt.timedelta(hours=2))
    moment = dt.datetime(2024, 1, 1, 12, 0, 30, tzinfo=plus_two)
    assert parse_schedule("0 0 * * * *").next_after(moment) == at("2024-01-01T11:00:00")


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        parse_schedule("* * * * * *").next_after(dt.datetime(2024, 1, 1))


def test_field_parsing():
    assert parse_cron_field("1-10/3", "minute", 0, 59) == {1, 4, 7, 10}
    assert parse_cron_field("*/15", "second", 0, 59) == {0, 15, 30, 45}
    assert parse_cron_field("jan,Mar", "month", 1, 12, {"JAN": 1, "MAR": 3}) == {1, 3}


@pytest.mark.parametrize("expression", [
    "* * * * *", "* * * * * * *", "60 * * * * *", "* * 24 * * *", "* * * 0 * *",
    "* * * * 13 *", "* * * * * 8", "*/0 * * * * *", "5-1 * * * * *", "a * * * * *",
    "1,,2 * * * * *", "25:00:00", "00:00:00", "5 minutes",
])
def test_invalid_schedules(expression):
    with pytest.raises(ScheduleError):
        parse_schedule(expression)


def test_impossible_schedule_says_so():
    with pytest.raises(ScheduleError, match="never fires"):
        parse_schedule("0 0 0 31 2 *").next_after(START)


def test_schedule_from_app_setting():
    schedule = parse_schedule("%CLEANUP_SCHEDULE%", {"CLEANUP_SCHEDULE": "0 0 3 * * *"})
    assert isinstance(schedule, CronSchedule)
    with pytest.raises(ScheduleError, match="not set"):
        parse_schedule("%MISSING%", {})
    assert isinstance(parse_schedule("01:00:00"), IntervalSchedule)


class FakeClock:
    """A clock that only moves when the timer loop sleeps or a function 'works'."""

    def __init__(self, now):
        self.now = now
        self.sleeps = []

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += dt.timedelta(seconds=seconds)
        await asyncio.sleep(0)


class RecordingFunction:
    """Stands in for HostedFunction: records calls, can fail or take (fake) time."""

    name = "recorder"

    def __init__(self, clock, work_seconds=0.0, fail_on=()):
        self.clock = clock
        self.work_seconds = work_seconds
        self.fail_on = set(fail_on)
        self.calls = []
        self.active = 0
        self.max_active = 0

    async def invoke(self, request):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.calls.append((self.clock(), request))
        await asyncio.sleep(0)
        self.clock.now += dt.timedelta(seconds=self.work_seconds)
        self.active -= 1
        if len(self.calls) in self.fail_on:
            raise RuntimeError("timer function failed")


async def run_job(job, until_calls):
    task = asyncio.create_task(job.run_forever())
    while len(job.function.calls) < until_calls:
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_timer_job_follows_the_schedule():
    clock = FakeClock(at("2024-01-01T10:00:07"))
    function = RecordingFunction(clock)
    job = TimerJob(function, parse_schedule("*/10 * * * * *"), clock=clock, sleep=clock.sleep)
    await run_job(job, 3)
    assert [c[0] for c in function.calls] == [
        at("2024-01-01T10:00:10"), at("2024-01-01T10:00:20"), at("2024-01-01T10:00:30")]
    request = function.calls[1][1]
    assert request.past_due is False
    assert request.schedule_status["Last"] == "2024-01-01T10:00:10+00:00"
    assert request.schedule_status["Next"] == "2024-01-01T10:00:30+00:00"


async def test_run_on_startup_runs_immediately_then_on_schedule():
    clock = FakeClock(at("2024-01-01T10:00:07"))
    function = RecordingFunction(clock)
    job = TimerJob(function, parse_schedule("0 * * * * *"), run_on_startup=True,
                   clock=clock, sleep=clock.sleep)
    await run_job(job, 2)
    assert [c[0] for c in function.calls] == [at("2024-01-01T10:00:07"), at("2024-01-01T10:01:00")]


async def test_long_runs_never_overlap_and_skip_missed_occurrences():
    clock = FakeClock(at("2024-01-01T10:00:00"))
    function = RecordingFunction(clock, work_seconds=25)
    job = TimerJob(function, parse_schedule("*/10 * * * * *"), clock=clock, sleep=clock.sleep)
    await run_job(job, 3)
    assert function.max_active == 1
    # 10:00:10 runs until 10:00:35, so 10:00:20 and 10:00:30 are skipped.
    assert [c[0] for c in function.calls] == [
        at("2024-01-01T10:00:10"), at("2024-01-01T10:00:40"), at("2024-01-01T10:01:10")]


async def test_a_failing_run_is_logged_and_the_timer_keeps_going(caplog):
    clock = FakeClock(at("2024-01-01T10:00:00"))
    function = RecordingFunction(clock, fail_on={1})
    job = TimerJob(function, parse_schedule("00:00:30"), clock=clock, sleep=clock.sleep)
    await run_job(job, 3)
    assert job.failures == 1 and job.runs == 3
    assert "timer function recorder failed" in caplog.text
    assert [c[0] for c in function.calls] == [
        at("2024-01-01T10:00:30"), at("2024-01-01T10:01:00"), at("2024-01-01T10:01:30")]


async def test_a_late_wake_up_is_reported_as_past_due():
    clock = FakeClock(at("2024-01-01T10:00:00"))

    async def oversleep(seconds):
        clock.now += dt.timedelta(seconds=seconds + 5)
        await asyncio.sleep(0)

    function = RecordingFunction(clock)
    job = TimerJob(function, parse_schedule("0 * * * * *"), clock=clock, sleep=oversleep)
    await run_job(job, 1)
    assert function.calls[0][1].past_due is True
