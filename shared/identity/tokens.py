"""Access tokens: HS256 JWTs for ACS identities, their scopes and lifetimes, signed and checked with one key."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt

from ..core.clock import Clock
from ..core.errors import Denied, InvalidRequest

SCOPES = ("chat", "voip", "chat.join", "chat.join.limited", "voip.join")
MIN_TOKEN_MINUTES, MAX_TOKEN_MINUTES, DEFAULT_TOKEN_MINUTES = 60, 1440, 1440
ALGORITHM = "HS256"
# PyJWT checks these are present; `check` reads each of them.
REQUIRED_CLAIMS = ("sub", "acsScope", "resourceId", "iat", "exp")
# PyJWT times tokens by the system clock, so `check` tests expiry against the service's clock
# instead; `iat` only dates a token for revocation and no token carries `nbf`.
_DECODE_OPTIONS = {"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_nbf": False, "verify_iat": False}


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_on: datetime


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: who, for what, until when."""

    user_id: str
    scopes: tuple[str, ...]
    issued_at: datetime
    expires_on: datetime


class _SdkSafeJSONEncoder(json.JSONEncoder):
    """Compact ASCII JSON whose base64url encoding is also valid standard base64.

    The SDK's CommunicationTokenCredential decodes the payload with the *standard* base64 alphabet,
    silently dropping '-' and '_'. Pure-ASCII JSON only produces those characters when a '>', '?' or
    '~' byte lands on the last position of a 3-byte group, so escaping those three keeps the payload
    segment identical in both alphabets.
    """

    _ESCAPES = str.maketrans({">": "\\u003e", "?": "\\u003f", "~": "\\u007e"})

    def encode(self, o: Any) -> str:
        return super().encode(o).translate(self._ESCAPES)


def parse_expiry(value: Any) -> timedelta:
    """`expiresInMinutes`: absent means 24 h; otherwise an integer from 60 to 1440, else InvalidRequest."""
    if value is None:
        return timedelta(minutes=DEFAULT_TOKEN_MINUTES)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest("expiresInMinutes must be an integer.", target="expiresInMinutes")
    if not MIN_TOKEN_MINUTES <= value <= MAX_TOKEN_MINUTES:
        raise InvalidRequest(
            f"expiresInMinutes must be between {MIN_TOKEN_MINUTES} and {MAX_TOKEN_MINUTES}.",
            target="expiresInMinutes",
        )
    return timedelta(minutes=value)


def parse_scopes(value: Any, *, field_name: str) -> tuple[str, ...]:
    """A non-empty list of known scopes, else InvalidRequest naming the field."""
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"{field_name} must be a non-empty array of scopes.", target=field_name)
    for scope in value:
        if scope not in SCOPES:
            raise InvalidRequest(
                f"Scope {scope!r} is not valid. Valid scopes are: {', '.join(SCOPES)}.", target=field_name
            )
    return tuple(dict.fromkeys(value))


class TokenSigner:
    """Signs and checks the tokens of one resource with its key (ANTEROOM_TOKEN_SIGNING_KEY)."""

    def __init__(self, signing_key: bytes, resource_id: str, clock: Clock) -> None:
        self._signing_key = signing_key
        self._resource_id = resource_id
        self._clock = clock

    def sign(self, user_id: str, scopes: tuple[str, ...], lifetime: timedelta) -> AccessToken:
        """A token for `user_id` with these scopes, valid for `lifetime` from now."""
        now = self._clock()
        expires = now + lifetime
        claims = {
            "skypeid": user_id.removeprefix("8:"),
            "sub": user_id,
            "acsScope": ",".join(scopes),
            "resourceId": self._resource_id,
            "iat": round(now.timestamp(), 6),
            "exp": int(expires.timestamp()),
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._signing_key, algorithm=ALGORITHM, json_encoder=_SdkSafeJSONEncoder)
        return AccessToken(token, datetime.fromtimestamp(claims["exp"], timezone.utc))

    def check(self, token: str) -> TokenClaims:
        """Check signature, algorithm, resource and expiry (not the user: IdentityService.verify does).

        Raises Denied for anything else; the message never echoes the token.
        """
        try:
            # Pinned to HS256: "none" and any other algorithm a token names are refused.
            claims = jwt.decode(token, self._signing_key, algorithms=[ALGORITHM], options=_DECODE_OPTIONS)
            issued = datetime.fromtimestamp(float(claims["iat"]), timezone.utc)
            expires = datetime.fromtimestamp(int(claims["exp"]), timezone.utc)
            user_id = str(claims["sub"])
            scopes = tuple(filter(None, str(claims["acsScope"]).split(",")))
            resource = claims["resourceId"]
        except (jwt.PyJWTError, ValueError, KeyError, TypeError, OverflowError, OSError):  # the last two: absurd timestamps
            raise Denied("The access token is not valid.") from None
        if resource != self._resource_id:
            raise Denied("The access token was issued for another resource.")
        if self._clock() >= expires:
            raise Denied("The access token has expired.")
        return TokenClaims(user_id, scopes, issued, expires)
