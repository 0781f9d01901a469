"""Communication identifier raw-id rules: which raw ids may be room participants, and E.164 numbers."""
from __future__ import annotations

import re

# ACS user families the SDK recognises (`8:acs:`, `8:dod-acs:`, `8:gcch-acs:`, `8:spool:`). The rest
# of the id is restricted to what ACS itself issues, which also keeps it safe as a Table RowKey.
_ACS_USER = re.compile(r"8:(?:acs|dod-acs|gcch-acs|spool):[A-Za-z0-9][A-Za-z0-9._-]{0,255}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def is_acs_user(raw_id: object) -> bool:
    """True for a raw id of an ACS user, the only identity a room roster accepts."""
    return isinstance(raw_id, str) and _ACS_USER.fullmatch(raw_id) is not None


def is_e164(number: object) -> bool:
    """True for an E.164 phone number (`+` then 2 to 15 digits, no leading zero)."""
    return isinstance(number, str) and _E164.fullmatch(number) is not None


def phone_raw_id(number: str) -> str:
    return f"4:{number}"
