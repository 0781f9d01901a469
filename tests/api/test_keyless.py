"""The app with no storage key and no topic key: storage and Event Grid reached with Entra tokens
from the managed identity (DefaultAzureCredential, unchanged), on Azurite's OAuth mode over HTTPS
and the local topic; an identity without a token answers 503 and logs why, never a token."""
from __future__ import annotations

import time

import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.communication.rooms import ParticipantRole, RoomsClient
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient

from localdev.certs import ensure_dev_certificate
from localdev.identity import EVENTGRID_RESOURCE, STORAGE_RESOURCE, LocalTokenCredential
from shared.bootstrap import build_services
from shared.config.settings import Settings
from shared.core.errors import IdentityUnavailable
from shared.rooms.model import CreateRoomRequest
from shared.storage.tables import TableStore
from tests.conftest import TEST_CERT_DIR
from tests.support.calls import CallUser, roster
from tests.support.entra import KeylessHost, keyless_settings, keyless_stack

pytestmark = pytest.mark.usefixtures("starts_processes")


@pytest.fixture(scope="module")
def keyless(tmp_path_factory, starts_processes):
    with keyless_stack(tmp_path_factory.mktemp("keyless"), ensure_dev_certificate(TEST_CERT_DIR)) as running:
        yield running


def _no_key_anywhere(env: dict[str, str]) -> None:
    assert not any(name in env for name in ("ANTEROOM_STORAGE_CONNECTION_STRING", "ANTEROOM_EVENTGRID_KEY",
                                            "AzureWebJobsStorage"))
    assert not any("AccountKey=" in value or "SharedAccessSignature" in value for value in env.values())


def test_rooms_are_created_and_read_through_the_api_with_tokens_only(keyless):
    _no_key_anywhere(keyless.host.env)
    rooms = RoomsClient.from_connection_string(keyless.acs_connection_string)
    created = rooms.create_room()
    assert rooms.get_room(created.id).id == created.id
    assert STORAGE_RESOURCE in keyless.identity.issued  # the app's tokens came from its managed identity
    # The room is in Azurite, written with a Bearer token: read it back with one.
    table = TableClient(keyless.azurite.endpoint, "anteroomRooms", credential=LocalTokenCredential())
    assert any(entity["PartitionKey"] == created.id for entity in table.list_entities())


def test_call_events_are_published_with_a_token_and_arrive(keyless):
    identity = CommunicationIdentityClient.from_connection_string(keyless.acs_connection_string)
    user, token = identity.create_user_and_token([CommunicationTokenScope.VOIP])
    caller = CallUser(user.raw_id, token.token, keyless.base_url, str(ensure_dev_certificate(TEST_CERT_DIR).ca_cert))
    rooms = RoomsClient.from_connection_string(keyless.acs_connection_string)
    room = rooms.create_room(participants=roster((caller, ParticipantRole.PRESENTER)))
    with keyless.events.subscribed() as subscriber:
        assert caller.join(room.id).status_code == 200
        events = subscriber.wait_for_count(2)
    assert {event["eventType"] for event in events} == {
        "Microsoft.Communication.CallStarted", "Microsoft.Communication.CallParticipantAdded"}
    assert EVENTGRID_RESOURCE in keyless.identity.issued
    assert "aeg-sas-key" not in keyless.host.output()


def test_composed_from_settings_with_an_injected_credential(keyless):
    """The path DefaultAzureCredential takes in the host (settings -> bootstrap -> TableStore), with
    a token credential given instead, as tools and tests give one."""
    settings = Settings.from_env(keyless_settings(keyless.azurite.endpoint, None), served_at="https://127.0.0.1:1")
    services = build_services(settings, credential=LocalTokenCredential())
    try:
        assert services.settings.storage_connection_string is None
        created = services.rooms.create(CreateRoomRequest.parse({}))
        assert services.rooms.get(created.room.id).room == created.room
    finally:
        services.close()


def test_a_token_storage_refuses_is_an_identity_problem(keyless):
    class StorageOfAnotherCloud(LocalTokenCredential):
        def get_token(self, *scopes, **kwargs):
            return super().get_token("https://storage.azure.us/.default")

    tables = TableStore(account_url=keyless.azurite.endpoint, credential=StorageOfAnotherCloud())
    try:
        with pytest.raises(IdentityUnavailable) as refused:
            tables.table("anteroomRooms")
    finally:
        tables.close()
    assert "storage refused the Entra token with 403 AuthenticationFailed" in refused.value.problem
    assert "Storage Table Data Contributor" in refused.value.problem


def test_an_identity_without_a_token_answers_503_and_the_log_names_the_problem(keyless):
    """The managed identity endpoint knows only the app's identity: a host naming another one in
    AZURE_CLIENT_ID gets no token, as in Azure when the identity is not assigned to the app."""
    env = {**keyless.host.env, "AZURE_CLIENT_ID": "00000000-0000-0000-0000-0000000000aa"}
    host = KeylessHost(env, ensure_dev_certificate(TEST_CERT_DIR)).start()
    try:
        rooms = RoomsClient.from_connection_string(f"endpoint={host.base_url}/;accesskey={env['ANTEROOM_ACCESS_KEY']}",
                                                   retry_total=0)
        with pytest.raises(HttpResponseError) as refused:
            rooms.create_room()
        answer = refused.value.response
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "5"
        assert answer.json() == {"error": {
            "code": "ServiceUnavailable",
            "message": "The service cannot authenticate to its storage right now; retry later."}}
        # Every API that needs storage answers alike: identities, tokens, room lists, room calls.
        identity = CommunicationIdentityClient.from_connection_string(
            f"endpoint={host.base_url}/;accesskey={env['ANTEROOM_ACCESS_KEY']}", retry_total=0)
        for attempt in (identity.create_user, lambda: list(rooms.list_rooms()),
                        lambda: rooms.get_room("99999999999999999")):
            with pytest.raises(HttpResponseError) as refused:
                attempt()
            assert (refused.value.status_code, refused.value.response.json()["error"]["code"]) == \
                (503, "ServiceUnavailable")
        # A user's token from the working host (same keys) is accepted, the join needs storage.
        user, token = CommunicationIdentityClient.from_connection_string(keyless.acs_connection_string) \
            .create_user_and_token([CommunicationTokenScope.VOIP])
        caller = CallUser(user.raw_id, token.token, host.base_url, str(ensure_dev_certificate(TEST_CERT_DIR).ca_cert))
        joined = caller.join("99999999999999999")
        assert (joined.status_code, joined.json()["error"]["code"], joined.headers["Retry-After"]) == \
            (503, "ServiceUnavailable", "5")
        output = host.wait_for_output("no Entra token for storage")
        assert "No User Assigned or Delegated Managed Identity found" in output
        assert env["AZURE_CLIENT_ID"] in keyless.identity.refused  # asked for, never given...
        for token_shape in ("eyJ", "access_token"):  # ...and none is in the log
            assert token_shape not in output
    finally:
        host.stop()


def test_the_identity_recovers_without_a_restart(keyless):
    """Once the identity can get tokens again (a role assignment applied, the endpoint back), the
    next request succeeds: nothing is cached from the failure."""
    keyless.identity.refusing = True
    env = {**keyless.host.env}
    host = KeylessHost(env, ensure_dev_certificate(TEST_CERT_DIR)).start()
    try:
        url = f"endpoint={host.base_url}/;accesskey={env['ANTEROOM_ACCESS_KEY']}"
        rooms = RoomsClient.from_connection_string(url, retry_total=0)
        with pytest.raises(HttpResponseError) as refused:
            rooms.create_room()
        assert refused.value.response.status_code == 503
        keyless.identity.refusing = False
        deadline = time.monotonic() + 30
        while True:
            try:
                assert rooms.create_room().id
                break
            except HttpResponseError as error:  # azure-identity waits a moment before asking again
                assert error.response.status_code == 503 and time.monotonic() < deadline
                time.sleep(0.5)
    finally:
        keyless.identity.refusing = False
        host.stop()
