"""Identity use cases: ACS users and their access tokens (signed JWTs the product verifies itself)."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

from ..core.clock import Clock
from ..core.errors import not_found, unauthorized
from .store import UsersStore
from .tokens import AccessToken, TokenClaims, TokenSigner


class IdentityService:
    """Users live in a UsersStore (by the user id's own part); tokens are HS256 JWTs."""

    def __init__(self, users: UsersStore, resource_id: str, signing_key: bytes, clock: Clock):
        self._users = users
        self._tokens = TokenSigner(signing_key, resource_id, clock)
        self._resource_id = resource_id
        self._clock = clock
        self._user_pattern = re.compile(rf"8:acs:{re.escape(resource_id)}_([0-9a-f-]{{36}})")

    def _local_part(self, user_id: str) -> str:
        match = self._user_pattern.fullmatch(user_id or "")
        if not match:
            raise not_found("The identity was not found in this resource.")
        return match.group(1)

    def _user(self, user_id: str):
        entity = self._users.get(self._local_part(user_id))
        if entity is None:
            raise not_found("The identity was not found in this resource.")
        return entity

    def create_user(self) -> str:
        user_id = f"8:acs:{self._resource_id}_{uuid.uuid4()}"
        self._users.create(self._local_part(user_id), self._clock())
        return user_id

    def issue_token(self, user_id: str, scopes: tuple[str, ...], lifetime: timedelta) -> AccessToken:
        """Sign a token for an existing user. Raises 404 for an unknown or deleted user."""
        self._user(user_id)
        return self._tokens.sign(user_id, scopes, lifetime)

    def revoke_tokens(self, user_id: str) -> None:
        """Every token issued before now stops working."""
        self._users.revoke_before(self._user(user_id), self._clock())

    def delete_user(self, user_id: str) -> None:
        local = self._local_part(user_id)
        self._user(user_id)
        self._users.delete(local)

    def verify(self, token: str) -> TokenClaims:
        """Check signature, expiry, resource, and that the user exists and has not revoked it.

        Raises a 401 AnteroomError for anything else; the message never echoes the token.
        """
        claims = self._tokens.check(token)
        try:
            entity = self._user(claims.user_id)
        except Exception as error:
            if getattr(error, "status", None) == 404:
                raise unauthorized("The access token's identity no longer exists.") from None
            raise
        revoked_before = entity.get("RevokedBefore")
        if revoked_before is not None and claims.issued_at <= revoked_before:
            raise unauthorized("The access token has been revoked.")
        return claims
