"""Identity use cases: ACS users and their access tokens (signed JWTs the product verifies itself)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from ..core.clock import Clock
from ..core.errors import bad_request, not_found, unauthorized
from ..storage.tables import TableStore, storage_faults

SCOPES = ("chat", "voip", "chat.join", "chat.join.limited", "voip.join")
MIN_TOKEN_MINUTES, MAX_TOKEN_MINUTES, DEFAULT_TOKEN_MINUTES = 60, 1440, 1440
_USER_ROW = "user"


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


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _payload_json(claims: dict) -> bytes:
    # The SDK's CommunicationTokenCredential decodes the payload with the *standard* base64
    # alphabet, silently dropping '-' and '_'. Pure-ASCII JSON only produces those characters when
    # a '>', '?' or '~' byte lands on the last position of a 3-byte group, so escaping those three
    # keeps the payload segment identical in both alphabets.
    text = json.dumps(claims, separators=(",", ":"), ensure_ascii=True)
    return text.replace(">", "\\u003e").replace("?", "\\u003f").replace("~", "\\u007e").encode()


def parse_expiry(value: Any) -> timedelta:
    """`expiresInMinutes`: absent means 24 h; otherwise an integer from 60 to 1440, else 400."""
    if value is None:
        return timedelta(minutes=DEFAULT_TOKEN_MINUTES)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request("expiresInMinutes must be an integer.", target="expiresInMinutes")
    if not MIN_TOKEN_MINUTES <= value <= MAX_TOKEN_MINUTES:
        raise bad_request(
            f"expiresInMinutes must be between {MIN_TOKEN_MINUTES} and {MAX_TOKEN_MINUTES}.",
            target="expiresInMinutes",
        )
    return timedelta(minutes=value)


def parse_scopes(value: Any, *, field_name: str) -> tuple[str, ...]:
    """A non-empty list of known scopes, else 400 naming the field."""
    if not isinstance(value, list) or not value:
        raise bad_request(f"{field_name} must be a non-empty array of scopes.", target=field_name)
    for scope in value:
        if scope not in SCOPES:
            raise bad_request(
                f"Scope {scope!r} is not valid. Valid scopes are: {', '.join(SCOPES)}.", target=field_name
            )
    return tuple(dict.fromkeys(value))


class IdentityService:
    """Users live in one Table (PartitionKey = the user id's own part); tokens are HS256 JWTs."""

    def __init__(self, tables: TableStore, table_name: str, resource_id: str, signing_key: bytes, clock: Clock):
        self._tables = tables
        self._table_name = table_name
        self._resource_id = resource_id
        self._signing_key = signing_key
        self._clock = clock
        self._user_pattern = re.compile(rf"8:acs:{re.escape(resource_id)}_([0-9a-f-]{{36}})")

    @property
    def _table(self):
        return self._tables.table(self._table_name)

    def _local_part(self, user_id: str) -> str:
        match = self._user_pattern.fullmatch(user_id or "")
        if not match:
            raise not_found("The identity was not found in this resource.")
        return match.group(1)

    def _user(self, user_id: str):
        with storage_faults():
            try:
                return self._table.get_entity(self._local_part(user_id), _USER_ROW)
            except ResourceNotFoundError:
                raise not_found("The identity was not found in this resource.") from None

    def create_user(self) -> str:
        user_id = f"8:acs:{self._resource_id}_{uuid.uuid4()}"
        with storage_faults():
            self._table.create_entity(
                {"PartitionKey": self._local_part(user_id), "RowKey": _USER_ROW, "CreatedAt": self._clock()}
            )
        return user_id

    def issue_token(self, user_id: str, scopes: tuple[str, ...], lifetime: timedelta) -> AccessToken:
        """Sign a token for an existing user. Raises 404 for an unknown or deleted user."""
        self._user(user_id)
        return self._sign(user_id, scopes, lifetime)

    def _sign(self, user_id: str, scopes: tuple[str, ...], lifetime: timedelta) -> AccessToken:
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
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64url(_payload_json(claims))
        signing_input = f"{header}.{payload}".encode()
        sig = _b64url(hmac.new(self._signing_key, signing_input, hashlib.sha256).digest())
        return AccessToken(f"{header}.{payload}.{sig}", datetime.fromtimestamp(claims["exp"], timezone.utc))

    def revoke_tokens(self, user_id: str) -> None:
        """Every token issued before now stops working."""
        entity = self._user(user_id)
        entity["RevokedBefore"] = self._clock()
        with storage_faults():
            self._table.upsert_entity(entity)

    def delete_user(self, user_id: str) -> None:
        local = self._local_part(user_id)
        self._user(user_id)
        with storage_faults():
            self._table.delete_entity(local, _USER_ROW)

    def verify(self, token: str) -> TokenClaims:
        """Check signature, expiry, resource, and that the user exists and has not revoked it.

        Raises a 401 AnteroomError for anything else; the message never echoes the token.
        """
        try:
            header, payload, sig = token.split(".")
            expected = _b64url(hmac.new(self._signing_key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(expected.encode(), sig.encode()):
                raise ValueError("signature")
            if json.loads(_b64url_decode(header)).get("alg") != "HS256":
                raise ValueError("alg")
            claims = json.loads(_b64url_decode(payload))
            issued = datetime.fromtimestamp(float(claims["iat"]), timezone.utc)
            expires = datetime.fromtimestamp(int(claims["exp"]), timezone.utc)
            user_id = str(claims["sub"])
            scopes = tuple(filter(None, str(claims["acsScope"]).split(",")))
            resource = claims["resourceId"]
        except (ValueError, KeyError, TypeError, OverflowError, OSError):  # the last two: absurd timestamps
            raise unauthorized("The access token is not valid.") from None
        if resource != self._resource_id:
            raise unauthorized("The access token was issued for another resource.")
        if self._clock() >= expires:
            raise unauthorized("The access token has expired.")
        try:
            entity = self._user(user_id)
        except Exception as error:
            if getattr(error, "status", None) == 404:
                raise unauthorized("The access token's identity no longer exists.") from None
            raise
        revoked_before = entity.get("RevokedBefore")
        if revoked_before is not None and issued <= revoked_before:
            raise unauthorized("The access token has been revoked.")
        return TokenClaims(user_id, scopes, issued, expires)
