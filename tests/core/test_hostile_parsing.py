"""Parsing edges the hardening tests found: dates that overflow UTC, non-ASCII digits, absurd token times."""
import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone

import pytest

from functions.errors import ROOM_CALLS_ERRORS
from shared.core.errors import Denied
from shared.identity.memory import MemoryUsersStore
from shared.identity.service import IdentityService
from shared.storage.memory import MemoryTable
from shared.core.timefmt import parse_rfc3339

RESOURCE = "6b2f3c1e-1d2a-4f55-9a0e-0f8a3c1d2b4e"
KEY = b"k" * 32


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01"])
def test_dates_beyond_the_representable_range_once_in_utc_are_value_errors(value):
    with pytest.raises(ValueError):
        parse_rfc3339(value)


def test_the_range_edges_themselves_parse():
    assert parse_rfc3339("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=timezone.utc)
    assert parse_rfc3339("9999-12-31T23:59:59Z").year == 9999


def test_only_ascii_digits_make_a_date():
    with pytest.raises(ValueError):
        parse_rfc3339("\uff12\uff10\uff13\uff10-01-01T00:00:00Z")  # fullwidth 2030
    with pytest.raises(ValueError):
        parse_rfc3339("2030-01-01T00:00:00.\u0661Z")  # Arabic-Indic one in the fraction


def signed_token(claims: dict) -> str:
    def b64url(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    return f"{header}.{payload}.{b64url(hmac.new(KEY, f'{header}.{payload}'.encode(), hashlib.sha256).digest())}"


@pytest.mark.parametrize("iat, exp", [(1e300, 10**30), (-1e300, 1), (0, 10**400)])
def test_correctly_signed_token_with_absurd_times_is_401(iat, exp):
    identity = IdentityService(MemoryUsersStore(MemoryTable()), RESOURCE, KEY, lambda: datetime.now(timezone.utc))
    token = signed_token({"sub": f"8:acs:{RESOURCE}_x", "acsScope": "voip", "resourceId": RESOURCE, "iat": iat, "exp": exp})
    with pytest.raises(Denied) as caught:
        identity.verify(token)
    assert ROOM_CALLS_ERRORS.http_error(caught.value).status == 401
