"""Conformance of the Identity API with the official azure-communication-identity SDK (sync and async)."""
import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from azure.communication.identity import CommunicationTokenScope
from azure.communication.identity.aio import CommunicationIdentityClient as AsyncIdentityClient
from azure.core.exceptions import HttpResponseError

from functions.errors import IDENTITY_ERRORS
from shared.core.errors import Denied

pytestmark = pytest.mark.stack

ALL_SCOPES = [
    CommunicationTokenScope.CHAT,
    CommunicationTokenScope.VOIP,
    CommunicationTokenScope.CHAT_JOIN,
    CommunicationTokenScope.CHAT_JOIN_LIMITED,
    CommunicationTokenScope.VOIP_JOIN,
]


def expires(token) -> datetime:
    # The SDK hands back expiresOn as the raw string it received.
    return datetime.fromisoformat(token.expires_on)


def payload_as_the_sdk_reads_it(token: str) -> dict:
    # CommunicationTokenCredential decodes with the standard alphabet and appends "==".
    return json.loads(base64.b64decode(token.split(".")[1] + "=="))


def test_create_user_id_shape(identity_client, stack):
    user = identity_client.create_user()
    assert user.raw_id.startswith(f"8:acs:{stack.resource_id}_")


@pytest.mark.parametrize("scope", ALL_SCOPES)
def test_create_user_and_token_every_scope(identity_client, scope):
    user, token = identity_client.create_user_and_token([scope])
    claims = payload_as_the_sdk_reads_it(token.token)
    assert claims["sub"] == user.raw_id and claims["acsScope"] == scope.value
    assert abs(expires(token) - datetime.now(timezone.utc) - timedelta(hours=24)) < timedelta(minutes=2)


@pytest.mark.parametrize("minutes", [60, 1440])
def test_custom_expiry(identity_client, minutes):
    user = identity_client.create_user()
    token = identity_client.get_token(user, [CommunicationTokenScope.VOIP], token_expires_in=timedelta(minutes=minutes))
    lifetime = (expires(token) - datetime.now(timezone.utc)).total_seconds()
    assert abs(lifetime - minutes * 60) <= minutes * 60 * 0.05
    assert payload_as_the_sdk_reads_it(token.token)["exp"] == int(expires(token).timestamp())


@pytest.mark.parametrize("minutes", [59, 1441])
def test_expiry_out_of_range_is_400(identity_client, minutes):
    user = identity_client.create_user()
    with pytest.raises(HttpResponseError) as caught:
        identity_client.get_token(user, [CommunicationTokenScope.CHAT], token_expires_in=timedelta(minutes=minutes))
    assert caught.value.status_code == 400
    with pytest.raises(HttpResponseError) as caught:
        identity_client.create_user_and_token([CommunicationTokenScope.CHAT], token_expires_in=timedelta(minutes=minutes))
    assert caught.value.status_code == 400


def test_revoke_and_delete_invalidate_tokens(identity_client, stack_services):
    user, token = identity_client.create_user_and_token([CommunicationTokenScope.VOIP])
    assert stack_services.identity.verify(token.token).user_id == user.raw_id
    identity_client.revoke_tokens(user)
    with pytest.raises(Denied) as caught:
        stack_services.identity.verify(token.token)
    assert IDENTITY_ERRORS.http_error(caught.value).status == 401
    fresh = identity_client.get_token(user, [CommunicationTokenScope.VOIP])
    assert stack_services.identity.verify(fresh.token).user_id == user.raw_id
    identity_client.delete_user(user)
    with pytest.raises(Denied) as caught:
        stack_services.identity.verify(fresh.token)
    assert IDENTITY_ERRORS.http_error(caught.value).status == 401
    with pytest.raises(HttpResponseError):
        identity_client.get_token(user, [CommunicationTokenScope.VOIP])


async def test_async_client(stack):
    async with AsyncIdentityClient.from_connection_string(stack.connection_string) as client:
        user, token = await client.create_user_and_token([CommunicationTokenScope.CHAT, CommunicationTokenScope.VOIP])
        assert payload_as_the_sdk_reads_it(token.token)["acsScope"] == "chat,voip"
        await client.revoke_tokens(user)
        await client.delete_user(user)
