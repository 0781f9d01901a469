"""Timer-trigger schedules (6-field NCRONTAB and TimeSpan) as pure functions of a given moment."""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from typing import Mapping, Protocol

UTC = datetime.timezone.utc

_MONTH_NAMES = {name: number for number, name in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_DAY_NAMES = {name: number for number, name in enumerate(
    ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}

# (name, lowest, highest, names) in NCRONTAB order.
_FIELDS = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 0, 7, _DAY_NAMES),  # 7 is Sunday too
)

# A schedule that cannot fire within this many years is treated as never firing
# (Feb 29 on a given weekday can be 40 years apart around a century year).
_SEARCH_YEARS = 100


class ScheduleError(ValueError):
    """A timer schedule the Functions host would reject."""


class Schedule(Protocol):
    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first occurrence strictly after `moment` (an aware datetime)."""


def _parse_value(text: str, field: str, low: int, high: int, names: Mapping[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ScheduleError(f"{field}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ScheduleError(f"{field}: {value} is outside {low}-{high}")
    return value


def parse_cron_field(text: str, field: str, low: int, high: int,
                     names: Mapping[str, int] | None = None) -> frozenset[int]:
    """Values allowed by one field: `*`, `*/n`, `a`, `a-b`, `a-b/n`, `a/n`, comma lists."""
    names = names or {}
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleError(f"{field}: empty list item in {text!r}")
        range_text, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{field}: bad step in {item!r}")
            step = int(step_text)
        if range_text == "*":
            start, stop = low, high
        elif "-" in range_text:
            first, _, last = range_text.partition("-")
            start = _parse_value(first, field, low, high, names)
            stop = _parse_value(last, field, low, high, names)
            if stop < start:
                raise ScheduleError(f"{field}: range {item!r} runs backwards")
        else:
            start = _parse_value(range_text, field, low, high, names)
            # `a/n` means "from a to the end, every n" as in NCrontab.
            stop = high if slash else start
        values.update(range(start, stop + 1, step))
    return frozenset(values)


# Parsed and stepped through here rather than by croniter: croniter reads `a-a` as the whole
# field, wraps a backwards range, and takes L, W, #, ?, H and @hourly, which NCRONTAB reads
# otherwise or refuses (and a check for those would be this parser again).
@dataclass(frozen=True)
class CronSchedule:
    """A 6-field NCRONTAB expression evaluated in UTC.

    Like NCrontab (and unlike Vixie cron) a moment must match both the
    day-of-month and the day-of-week fields.
    """

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> "CronSchedule":
        fields = expression.split()
        if len(fields) != 6:
            raise ScheduleError(
                f"{expression!r}: NCRONTAB needs 6 fields "
                "({second} {minute} {hour} {day} {month} {day-of-week})")
        parsed = [parse_cron_field(text, name, low, high, names)
                  for text, (name, low, high, names) in zip(fields, _FIELDS)]
        weekdays = frozenset(d % 7 for d in parsed[5])
        return cls(expression, *parsed[:5], weekdays)

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        when = _as_utc(moment).replace(microsecond=0) + datetime.timedelta(seconds=1)
        give_up = when.year + _SEARCH_YEARS
        while when.year <= give_up:
            if when.month not in self.months:
                when = _start_of_next_month(when)
            elif when.day not in self.days or (when.weekday() + 1) % 7 not in self.weekdays:
                when = _start_of_day(when) + datetime.timedelta(days=1)
            elif when.hour not in self.hours:
                when = when.replace(minute=0, second=0) + datetime.timedelta(hours=1)
            elif when.minute not in self.minutes:
                when = when.replace(second=0) + datetime.timedelta(minutes=1)
            elif when.second not in self.seconds:
                when += datetime.timedelta(seconds=1)
            else:
                return when
        raise ScheduleError(f"{self.expression!r} never fires")


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule (`hh:mm:ss`, `d.hh:mm:ss`): every interval after the previous run."""

    expression: str
    interval: datetime.timedelta

    _PATTERN = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?\Z")

    @classmethod
    def parse(cls, expression: str) -> "IntervalSchedule":
        found = cls._PATTERN.match(expression.strip())
        if not found:
            raise ScheduleError(f"{expression!r} is not a TimeSpan (hh:mm:ss)")
        days, hours, minutes, seconds = (int(g) if g else 0 for g in found.groups())
        if hours > 23 or minutes > 59 or seconds > 59:
            raise ScheduleError(f"{expression!r} is not a TimeSpan (hh:mm:ss)")
        interval = datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if interval <= datetime.timedelta(0):
            raise ScheduleError(f"{expression!r}: the interval must be positive")
        return cls(expression, interval)

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        return _as_utc(moment) + self.interval


def parse_schedule(expression: str, environ: Mapping[str, str] | None = None) -> Schedule:
    """Parse a timer trigger's schedule; `%Name%` is looked up in app settings as the host does."""
    text = expression.strip()
    if len(text) > 2 and text.startswith("%") and text.endswith("%"):
        setting = text[1:-1]
        environ = os.environ if environ is None else environ
        if setting not in environ:
            raise ScheduleError(f"schedule {expression!r}: app setting {setting!r} is not set")
        text = environ[setting].strip()
    if " " in text:
        return CronSchedule.parse(text)
    return IntervalSchedule.parse(text)


def _as_utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        raise ValueError("schedules need timezone-aware datetimes")
    return moment.astimezone(UTC)


def _start_of_day(moment: datetime.datetime) -> datetime.datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _start_of_next_month(moment: datetime.datetime) -> datetime.datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return _start_of_day(moment).replace(year=year, month=month, day=1)
