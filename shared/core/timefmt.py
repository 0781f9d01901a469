"""Date-time parsing and formatting in the shapes ACS uses on the wire (RFC 3339 in, `+00:00` out)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime

_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<offset>[Zz]|[+-]\d{2}:?\d{2})$",
    re.ASCII,  # \d would otherwise match any script's digits, which RFC 3339 does not allow
)
IMF_FIXDATE_PATTERN = (
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT$"
)
_IMF_FIXDATE = re.compile(IMF_FIXDATE_PATTERN)
# What format_acs writes: UTC as +00:00, microseconds with trailing zeros trimmed, none when zero.
ACS_DATE_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,5}[1-9])?\+00:00$"


def to_utc(moment: datetime | None, name: str = "datetime") -> datetime | None:
    """The same instant in UTC; None stays None.

    A naive `moment` (no tzinfo, or one whose utcoffset() is None) raises ValueError naming `name`:
    `astimezone` would read it as the host's local time, so the result would depend on the machine.
    """
    if moment is None:
        return None
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(timezone.utc)


def assume_utc(moment: datetime | None) -> datetime | None:
    """The same instant in UTC, a naive `moment` being taken as UTC already; None stays None.

    Only for values whose source defines them as UTC (Table storage's Edm.DateTime, a command-line
    bound documented as UTC); anywhere else a naive datetime is a mistake, which to_utc refuses.
    """
    if moment is not None and moment.utcoffset() is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return to_utc(moment)


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp to an aware UTC datetime.

    Fractions beyond microseconds (ACS emits up to 7 digits) are truncated, never rounded, so a
    value read back is never later than the one written. Raises ValueError on anything else.
    """
    if not isinstance(value, str):
        raise ValueError("not a string")
    match = _RFC3339.match(value.strip())
    if not match:
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    offset = match["offset"]
    if offset in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise ValueError(f"bad offset in {value!r}")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    parsed = datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}").replace(tzinfo=tz)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before the first representable instant
        raise ValueError(f"out of range: {value!r}") from None


def format_acs(moment: datetime) -> str:
    """Format as ACS does: `+00:00`, fractional seconds with trailing zeros trimmed, none when zero."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "+00:00"


def parse_imf_fixdate(value: str) -> datetime:
    """Parse an RFC 1123 IMF-fixdate (`Tue, 24 Nov 2026 12:34:06 GMT`); raises ValueError otherwise."""
    if not isinstance(value, str) or not _IMF_FIXDATE.match(value.strip()):
        raise ValueError(f"not an RFC 1123 date: {value!r}")
    return parsedate_to_datetime(value.strip()).astimezone(timezone.utc)


def format_imf_fixdate(moment: datetime) -> str:
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)
