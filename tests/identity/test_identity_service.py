"""Identity rules on the users store's in-memory twin: users, tokens, revocation and deletion, with a manual clock."""
from datetime import datetime, timedelta, timezone

import pytest

from shared.core.clock import ManualClock
from functions.errors import IDENTITY_ERRORS, HttpError
from shared.core.errors import DomainError
from shared.identity.memory import MemoryUsersStore
from shared.identity.service import IdentityService
from shared.storage.memory import MemoryTable

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
RESOURCE = "6b2f3c1e-1d2a-4f55-9a0e-0f8a3c1d2b4e"
HOUR = timedelta(hours=1)


@pytest.fixture
def clock():
    return ManualClock(NOW)


@pytest.fixture
def identity(clock):
    return IdentityService(MemoryUsersStore(MemoryTable()), RESOURCE, b"k" * 32, clock)


def refusal(call, *args) -> HttpError:
    """The Identity API's answer to the domain error `call` raises."""
    with pytest.raises(DomainError) as caught:
        call(*args)
    return IDENTITY_ERRORS.http_error(caught.value)


def test_a_new_users_token_verifies_until_it_expires(identity, clock):
    user = identity.create_user()
    assert user.startswith(f"8:acs:{RESOURCE}_")
    token = identity.issue_token(user, ("voip",), HOUR)
    assert token.expires_on == NOW + HOUR
    claims = identity.verify(token.token)
    assert (claims.user_id, claims.scopes) == (user, ("voip",))
    clock.advance(HOUR)
    assert refusal(identity.verify, token.token).status == 401


def test_revoking_invalidates_the_tokens_issued_before_only(identity, clock):
    user = identity.create_user()
    old = identity.issue_token(user, ("voip",), HOUR).token
    identity.revoke_tokens(user)
    assert refusal(identity.verify, old).status == 401
    clock.advance(timedelta(minutes=1))
    assert identity.verify(identity.issue_token(user, ("voip",), HOUR).token).user_id == user


def test_a_deleted_user_has_no_tokens_and_no_more_operations(identity):
    user = identity.create_user()
    token = identity.issue_token(user, ("chat",), HOUR).token
    identity.delete_user(user)
    assert refusal(identity.verify, token).status == 401
    for operation in (identity.delete_user, identity.revoke_tokens):
        assert refusal(operation, user).status == 404
    assert refusal(identity.issue_token, user, ("voip",), HOUR).status == 404


@pytest.mark.parametrize("user", ["8:acs:other-resource_0b5fd8a4-5c0e-4f4c-9d43-3b1c7b8e2a11", "not-an-id", ""])
def test_ids_of_other_resources_or_malformed_are_404(identity, user):
    assert refusal(identity.issue_token, user, ("voip",), HOUR).status == 404


def test_a_token_of_another_resource_is_401(identity, clock):
    other = IdentityService(MemoryUsersStore(MemoryTable()), "0b5fd8a4-5c0e-4f4c-9d43-3b1c7b8e2a11", b"k" * 32, clock)
    token = other.issue_token(other.create_user(), ("voip",), HOUR).token
    assert refusal(identity.verify, token).status == 401
