"""Conformance of the Rooms API with the official azure-communication-rooms SDK (sync), over HTTPS."""
import threading
from datetime import datetime, timedelta, timezone

import pytest
from azure.communication.identity import CommunicationUserIdentifier
from azure.communication.rooms import ParticipantRole, RoomParticipant, RoomsClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

pytestmark = pytest.mark.stack
ACS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"


def parse(value: str) -> datetime:
    return datetime.strptime(value, ACS_FORMAT) if "." in value else datetime.fromisoformat(value)


@pytest.fixture
def users(identity_client):
    return [identity_client.create_user() for _ in range(4)]


def participant(user, role=None):
    return RoomParticipant(communication_identifier=user, role=role) if role else RoomParticipant(communication_identifier=user)


def test_create_without_arguments_defaults(rooms_client: RoomsClient):
    room = rooms_client.create_room()
    valid_from, valid_until = parse(room.valid_from), parse(room.valid_until)
    assert valid_until - valid_from == timedelta(days=180)
    assert abs(datetime.now(timezone.utc) - valid_from) < timedelta(minutes=1)
    assert room.pstn_dial_out_enabled is False and len(room.id) == 17


def test_create_echoes_times_to_the_microsecond(rooms_client):
    valid_from = datetime.now(timezone.utc) + timedelta(days=1, microseconds=123456)
    valid_until = valid_from + timedelta(weeks=4, microseconds=654321)
    room = rooms_client.create_room(valid_from=valid_from, valid_until=valid_until, pstn_dial_out_enabled=True)
    assert datetime.strptime(room.valid_from, ACS_FORMAT) == valid_from
    assert datetime.strptime(room.valid_until, ACS_FORMAT) == valid_until
    fetched = rooms_client.get_room(room_id=room.id)
    assert (fetched.valid_from, fetched.valid_until, fetched.pstn_dial_out_enabled) == (room.valid_from, room.valid_until, True)


def test_create_with_participants_and_list_them(rooms_client, users):
    john, fred, chris, jordan = users
    room = rooms_client.create_room(
        participants=[
            participant(john, ParticipantRole.PRESENTER),
            participant(fred, ParticipantRole.CONSUMER),
            participant(chris),
            participant(jordan, ParticipantRole.COLLABORATOR),
        ]
    )
    listed = {p.communication_identifier.raw_id: p.role for p in rooms_client.list_participants(room_id=room.id)}
    assert listed == {
        john.raw_id: "Presenter",
        fred.raw_id: "Consumer",
        chris.raw_id: "Attendee",
        jordan.raw_id: "Collaborator",
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"valid_until": datetime.now(timezone.utc) + timedelta(weeks=29)}, "The time range is incorrect, or larger than 180 days."),
        ({"valid_until": datetime.now(timezone.utc) - timedelta(weeks=1)}, "The time range end is in the past."),
        ({"valid_from": datetime.now(timezone.utc) + timedelta(weeks=31)}, "Value is incorrect or more than 180 days in the future."),
    ],
)
def test_create_window_errors(rooms_client, kwargs, message):
    with pytest.raises(HttpResponseError) as caught:
        rooms_client.create_room(**kwargs)
    assert caught.value.status_code == 400
    assert caught.value.error.details[0].message == message


def test_create_with_bad_raw_id(rooms_client):
    with pytest.raises(HttpResponseError) as caught:
        rooms_client.create_room(participants=[participant(CommunicationUserIdentifier("wrong_mri"))])
    assert caught.value.status_code == 400
    assert caught.value.error.message == "Invalid format for communication identifier."


def test_get_bad_and_unknown_ids(rooms_client):
    with pytest.raises(HttpResponseError) as caught:
        rooms_client.get_room(room_id="invalid_id")
    assert caught.value.status_code == 400 and caught.value.error.message == "Invalid room ID length."
    with pytest.raises(ResourceNotFoundError):
        rooms_client.get_room(room_id="99999999999999999")


def test_update_room_merge_patch(rooms_client):
    room = rooms_client.create_room(pstn_dial_out_enabled=True)
    valid_until = datetime.now(timezone.utc) + timedelta(days=30, microseconds=5)
    updated = rooms_client.update_room(room_id=room.id, valid_until=valid_until)
    assert updated.pstn_dial_out_enabled is True  # null in the PATCH left it unchanged
    assert datetime.strptime(updated.valid_until, ACS_FORMAT) == valid_until
    assert updated.created_at == room.created_at
    untouched = rooms_client.update_room(room_id=room.id)
    assert untouched.valid_until == updated.valid_until


def test_update_room_errors_change_nothing(rooms_client):
    room = rooms_client.create_room()
    with pytest.raises(HttpResponseError) as caught:
        rooms_client.update_room(room_id=room.id, valid_until=datetime.now(timezone.utc) + timedelta(weeks=29))
    assert caught.value.error.details[0].target == "ValidUntil"
    with pytest.raises(HttpResponseError):
        rooms_client.update_room(
            room_id=room.id,
            valid_from=datetime.now(timezone.utc) - timedelta(days=3),
            valid_until=datetime.now(timezone.utc) - timedelta(weeks=1),
        )
    assert rooms_client.get_room(room_id=room.id).valid_until == room.valid_until
    with pytest.raises(HttpResponseError) as caught:
        rooms_client.update_room(room_id="invalid_id")
    assert caught.value.status_code == 400


def test_delete_then_get_update_fail(rooms_client):
    room = rooms_client.create_room()
    rooms_client.delete_room(room_id=room.id)
    with pytest.raises(ResourceNotFoundError):
        rooms_client.get_room(room_id=room.id)
    with pytest.raises(ResourceNotFoundError):
        rooms_client.update_room(room_id=room.id, pstn_dial_out_enabled=True)
    with pytest.raises(HttpResponseError) as caught:
        rooms_client.delete_room(room_id="123")
    assert caught.value.status_code == 400


def test_participants_upsert_remove_and_errors(rooms_client, users):
    john, fred, chris, jordan = users
    room = rooms_client.create_room(participants=[participant(john, ParticipantRole.PRESENTER)])
    rooms_client.add_or_update_participants(
        room_id=room.id,
        participants=[participant(john, ParticipantRole.ATTENDEE), participant(fred, ParticipantRole.CONSUMER), participant(chris), participant(jordan, ParticipantRole.COLLABORATOR)],
    )
    roles = {p.communication_identifier.raw_id: p.role for p in rooms_client.list_participants(room_id=room.id)}
    assert roles == {john.raw_id: "Attendee", fred.raw_id: "Consumer", chris.raw_id: "Attendee", jordan.raw_id: "Collaborator"}

    rooms_client.remove_participants(room_id=room.id, participants=[fred, CommunicationUserIdentifier("8:acs:never_there")])
    assert {p.communication_identifier.raw_id for p in rooms_client.list_participants(room_id=room.id)} == {john.raw_id, chris.raw_id, jordan.raw_id}

    with pytest.raises(HttpResponseError) as caught:
        rooms_client.add_or_update_participants(room_id=room.id, participants=[participant(fred, "Kafka"), participant(john, ParticipantRole.PRESENTER)])
    assert caught.value.status_code == 400 and caught.value.error.details[0].target.endswith(".role")
    with pytest.raises(HttpResponseError) as caught:
        rooms_client.remove_participants(room_id=room.id, participants=[CommunicationUserIdentifier("wrong_mri"), john])
    assert caught.value.status_code == 400
    assert caught.value.error.message == "Communication identifier wrong_mri is not supported."
    # Both refused requests were all-or-nothing: john is still an Attendee and still there.
    roles = {p.communication_identifier.raw_id: p.role for p in rooms_client.list_participants(room_id=room.id)}
    assert roles[john.raw_id] == "Attendee" and fred.raw_id not in roles


def test_list_rooms_pages_past_the_first(rooms_client, stack):
    created = [rooms_client.create_room().id for _ in range(stack.rooms_page_size * 2 + 1)]
    listed = [room.id for room in rooms_client.list_rooms()]
    assert set(created) <= set(listed)
    assert len(listed) == len(set(listed))
    # Newest first, as ACS lists them.
    positions = [listed.index(room_id) for room_id in created]
    assert positions == sorted(positions, reverse=True)


def test_list_rooms_with_explicit_api_version(stack):
    client = RoomsClient.from_connection_string(stack.connection_string, api_version="2024-04-15")
    pages = client.list_rooms().by_page()
    first = list(next(pages))
    second = list(next(pages))
    assert first and second and not set(r.id for r in first) & set(r.id for r in second)


def test_list_participants_pages(rooms_client, stack):
    count = stack.participants_page_size * 2 + 3
    people = [CommunicationUserIdentifier(f"8:acs:paging_{i:04d}") for i in range(count)]
    room = rooms_client.create_room(participants=[participant(p) for p in people])
    listed = [p.communication_identifier.raw_id for p in rooms_client.list_participants(room_id=room.id)]
    assert sorted(listed) == sorted(p.raw_id for p in people)


def test_concurrent_roster_updates_lose_none(rooms_client):
    room = rooms_client.create_room()
    errors = []

    def add(index):
        try:
            rooms_client.add_or_update_participants(
                room_id=room.id, participants=[participant(CommunicationUserIdentifier(f"8:acs:concurrent_{index}"))]
            )
        except Exception as error:  # collected so the assertion shows it
            errors.append(error)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(list(rooms_client.list_participants(room_id=room.id))) == 24


def test_large_roster_change_is_atomic_and_complete(rooms_client):
    room = rooms_client.create_room()
    people = [CommunicationUserIdentifier(f"8:acs:bulk_{i:04d}") for i in range(250)]
    rooms_client.add_or_update_participants(room_id=room.id, participants=[participant(p) for p in people])
    assert len(list(rooms_client.list_participants(room_id=room.id))) == 250
    rooms_client.remove_participants(room_id=room.id, participants=people[:180])
    assert {p.communication_identifier.raw_id for p in rooms_client.list_participants(room_id=room.id)} == {p.raw_id for p in people[180:]}
