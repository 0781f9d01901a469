"""Identity use cases: ACS users and their access tokens (signed JWTs the product verifies itself)."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

from ..core.clock import Clock
from ..core.errors import Denied, IdentityNotFound
from ..core.identifiers import UUID_PATTERN
from .store import UsersStore
from .tokens import AccessToken, TokenClaims, TokenSigner

USER_ID_PREFIX = "8:acs:"


def user_id_pattern(resource_pattern: str) -> str:
    """The ids of the users of a resource whose id matches `resource_pattern`; the user's own part is group 1."""
    return f"{USER_ID_PREFIX}{resource_pattern}_({UUID_PATTERN})"


class IdentityService:
    """Users live in a UsersStore (by the user id's own part); tokens are HS256 JWTs."""

    def __init__(self, users: UsersStore, resource_id: str, signing_key: bytes, clock: Clock):
        self._users = users
        self._tokens = TokenSigner(signing_key, resource_id, clock)
        self._resource_id = resource_id
        self._clock = clock
        self._user_pattern = re.compile(user_id_pattern(re.escape(resource_id)))

    def _local_part(self, user_id: str) -> str | None:
        """The user id's own part, None for an id that is not one of this resource's users."""
        match = self._user_pattern.fullmatch(user_id or "")
        return match.group(1) if match else None

    def _find_user(self, user_id: str):
        """The user's entity, None for an id of another resource or a user never created or deleted."""
        local = self._local_part(user_id)
        return self._users.get(local) if local is not None else None

    def _user(self, user_id: str):
        entity = self._find_user(user_id)
        if entity is None:
            raise IdentityNotFound(user_id)
        return entity

    def create_user(self) -> str:
        user_id = f"{USER_ID_PREFIX}{self._resource_id}_{uuid.uuid4()}"
        self._users.create(self._local_part(user_id), self._clock())
        return user_id

    def issue_token(self, user_id: str, scopes: tuple[str, ...], lifetime: timedelta) -> AccessToken:
        """Sign a token for an existing user. Raises IdentityNotFound for an unknown or deleted user."""
        self._user(user_id)
        return self._tokens.sign(user_id, scopes, lifetime)

    def revoke_tokens(self, user_id: str) -> None:
        """Every token issued before now stops working."""
        self._users.revoke_before(self._user(user_id), self._clock())

    def delete_user(self, user_id: str) -> None:
        self._user(user_id)
        self._users.delete(self._local_part(user_id))

    def verify(self, token: str) -> TokenClaims:
        """Check signature, expiry, resource, and that the user exists and has not revoked it.

        Raises Denied for anything else; the message never echoes the token.
        """
        claims = self._tokens.check(token)
        entity = self._find_user(claims.user_id)
        if entity is None:
            raise Denied("The access token's identity no longer exists.")
        revoked_before = entity.get("RevokedBefore")
        if revoked_before is not None and claims.issued_at <= revoked_before:
            raise Denied("The access token has been revoked.")
        return claims
