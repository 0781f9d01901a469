"""The UsersStore contract, on the in-memory twin and on TableUsersStore on Azurite: create, read, revoke, delete."""
from datetime import datetime, timedelta, timezone

import pytest

from shared.identity.memory import MemoryUsersStore
from shared.identity.store import TableUsersStore

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
USER = "0b5fd8a4-5c0e-4f4c-9d43-3b1c7b8e2a11"


@pytest.fixture
def users(storage):
    return storage.build(MemoryUsersStore, TableUsersStore)


def test_a_created_user_reads_back_without_a_revocation(users):
    assert users.get(USER) is None
    users.create(USER, T0)
    user = users.get(USER)
    assert user["CreatedAt"] == T0 and user.get("RevokedBefore") is None


def test_revoking_records_the_moment_and_keeps_the_user(users):
    users.create(USER, T0)
    users.revoke_before(users.get(USER), T0 + timedelta(minutes=1))
    users.revoke_before(users.get(USER), T0 + timedelta(minutes=2))
    user = users.get(USER)
    assert (user["CreatedAt"], user["RevokedBefore"]) == (T0, T0 + timedelta(minutes=2))


def test_a_deleted_user_is_gone_and_deleting_again_is_no_error(users):
    users.create(USER, T0)
    users.delete(USER)
    assert users.get(USER) is None
    users.delete(USER)
