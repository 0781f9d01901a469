"""Identifier rules: which raw ids may be room participants, E.164 numbers, and the shapes of the ids the app makes.

The `*_PATTERN` strings are written once here and used both by the checks below and by the
OpenAPI document (functions/openapi.py); they are valid as Python and as ECMA-262 patterns.
"""
from __future__ import annotations

import base64
import re

# ACS user families the SDK recognises (`8:acs:`, `8:dod-acs:`, `8:gcch-acs:`, `8:spool:`). The rest
# of the id is restricted to what ACS itself issues, which also keeps it safe as a Table RowKey.
ACS_USER_RAW_ID_PATTERN = r"8:(?:acs|dod-acs|gcch-acs|spool):[A-Za-z0-9][A-Za-z0-9._-]{0,255}"
E164_PATTERN = r"\+[1-9][0-9]{1,14}"  # `+` then 2 to 15 digits, no leading zero
PHONE_RAW_ID_PREFIX = "4:"
UUID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # str(uuid.uuid4())
OPAQUE_ID_PATTERN = "[A-Za-z0-9_-]+"  # what opaque_id makes: URL-safe base64 without padding
_ACS_USER = re.compile(ACS_USER_RAW_ID_PATTERN)
_E164 = re.compile(E164_PATTERN)


def is_acs_user(raw_id: object) -> bool:
    """True for a raw id of an ACS user, the only identity a room roster accepts."""
    return isinstance(raw_id, str) and _ACS_USER.fullmatch(raw_id) is not None


def is_e164(number: object) -> bool:
    """True for an E.164 phone number."""
    return isinstance(number, str) and _E164.fullmatch(number) is not None


def phone_raw_id(number: str) -> str:
    return PHONE_RAW_ID_PREFIX + number


def opaque_id(text: str) -> str:
    """An id that carries `text` but shows nothing of it at a glance, like ACS's serverCallIds and call connection ids."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
