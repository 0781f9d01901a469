"""Wire date-time formats: RFC 3339 in, ACS's `+00:00` with trimmed fractions out."""
from datetime import datetime, timedelta, timezone, tzinfo

import pytest

from shared.core.timefmt import assume_utc, format_acs, parse_imf_fixdate, parse_rfc3339, to_utc


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2025-01-01T10:00:00Z", datetime(2025, 1, 1, 10, tzinfo=timezone.utc)),
        ("2025-01-02T10:00:00.123456Z", datetime(2025, 1, 2, 10, 0, 0, 123456, tzinfo=timezone.utc)),
        ("2025-02-19T07:29:39.0326253+00:00", datetime(2025, 2, 19, 7, 29, 39, 32625, tzinfo=timezone.utc)),
        ("2025-01-01T12:00:00+02:00", datetime(2025, 1, 1, 10, tzinfo=timezone.utc)),
    ],
)
def test_parse(text, expected):
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize("text", ["2025-01-01", "yesterday", "2025-13-01T00:00:00Z", "2025-01-01T00:00:00+25:00", 5])
def test_parse_rejects(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)


@pytest.mark.parametrize(
    "moment, text",
    [
        (datetime(2023, 6, 30, tzinfo=timezone.utc), "2023-06-30T00:00:00+00:00"),
        (datetime(2025, 2, 22, 1, 29, 38, 885912, tzinfo=timezone.utc), "2025-02-22T01:29:38.885912+00:00"),
        (datetime(2025, 2, 19, 6, 46, 53, 48600, tzinfo=timezone.utc), "2025-02-19T06:46:53.0486+00:00"),
    ],
)
def test_format(moment, text):
    assert format_acs(moment) == text
    # The SDK's own tests parse what we send back with this exact pattern.
    if moment.microsecond:
        assert datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z") == moment


def test_imf_fixdate():
    assert parse_imf_fixdate("Tue, 24 Nov 2026 12:34:06 GMT") == datetime(2026, 11, 24, 12, 34, 6, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        parse_imf_fixdate("2026-11-24T12:34:06Z")


class NoOffset(tzinfo):
    """A tzinfo that does not know its offset: datetime counts such a value as naive."""

    def utcoffset(self, dt):
        return None


PLUS_TWO = timezone(timedelta(hours=2))
NOON_UTC = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("convert", [to_utc, assume_utc])
def test_utc_helpers_convert_aware_values_and_pass_none(convert):
    converted = convert(datetime(2026, 11, 24, 14, tzinfo=PLUS_TWO))
    assert converted == NOON_UTC and converted.tzinfo is timezone.utc
    assert convert(NOON_UTC) == NOON_UTC
    assert convert(None) is None


@pytest.mark.parametrize("naive", [datetime(2026, 11, 24, 12), datetime(2026, 11, 24, 12, tzinfo=NoOffset())])
def test_to_utc_refuses_naive_values_naming_them(naive):
    with pytest.raises(ValueError, match="^joined_at must be timezone-aware$"):
        to_utc(naive, "joined_at")


@pytest.mark.parametrize("naive", [datetime(2026, 11, 24, 12), datetime(2026, 11, 24, 12, tzinfo=NoOffset())])
def test_assume_utc_reads_naive_values_as_utc(naive):
    converted = assume_utc(naive)
    assert converted == NOON_UTC and converted.tzinfo is timezone.utc
