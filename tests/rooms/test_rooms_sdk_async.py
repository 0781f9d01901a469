"""Conformance with the official async Rooms client (aiohttp transport) over HTTPS."""
import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from azure.communication.identity import CommunicationUserIdentifier
from azure.communication.rooms import ParticipantRole, RoomParticipant
from azure.communication.rooms.aio import RoomsClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

pytestmark = pytest.mark.stack
ACS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"


@pytest.fixture
async def client(stack):
    async with RoomsClient.from_connection_string(stack.connection_string) as rooms:
        yield rooms


async def test_lifecycle(client):
    valid_from = datetime.now(timezone.utc) + timedelta(hours=1, microseconds=42)
    room = await client.create_room(valid_from=valid_from, valid_until=valid_from + timedelta(days=2), pstn_dial_out_enabled=True)
    assert datetime.strptime(room.valid_from, ACS_FORMAT) == valid_from
    fetched = await client.get_room(room_id=room.id)
    assert fetched.id == room.id and fetched.pstn_dial_out_enabled is True
    updated = await client.update_room(room_id=room.id, pstn_dial_out_enabled=False)
    assert updated.pstn_dial_out_enabled is False and updated.valid_until == room.valid_until
    await client.delete_room(room_id=room.id)
    with pytest.raises(ResourceNotFoundError):
        await client.get_room(room_id=room.id)


async def test_valid_from_seven_months_ahead_is_refused(client):
    with pytest.raises(HttpResponseError) as caught:
        await client.create_room(valid_from=datetime.now(timezone.utc) + timedelta(weeks=30))
    assert caught.value.status_code == 400 and caught.value.error.details[0].target == "ValidFrom"


async def test_participants_and_paging(client, stack):
    people = [CommunicationUserIdentifier(f"8:acs:async_{i:03d}") for i in range(stack.participants_page_size + 2)]
    room = await client.create_room()
    await client.add_or_update_participants(
        room_id=room.id, participants=[RoomParticipant(communication_identifier=p, role=ParticipantRole.PRESENTER) for p in people]
    )
    listed = [p async for p in client.list_participants(room_id=room.id)]
    assert len(listed) == len(people) and {p.role for p in listed} == {"Presenter"}
    await client.remove_participants(room_id=room.id, participants=people[:2])
    assert len([p async for p in client.list_participants(room_id=room.id)]) == len(people) - 2


async def test_list_rooms_second_page(client, stack):
    for _ in range(stack.rooms_page_size + 1):
        await client.create_room()
    listed = [room.id async for room in client.list_rooms()]
    assert len(listed) > stack.rooms_page_size and len(listed) == len(set(listed))


async def test_concurrent_roster_updates(client):
    room = await client.create_room()
    await asyncio.gather(
        *(
            client.add_or_update_participants(
                room_id=room.id, participants=[RoomParticipant(communication_identifier=CommunicationUserIdentifier(f"8:acs:aio_{i}"))]
            )
            for i in range(20)
        )
    )
    assert len([p async for p in client.list_participants(room_id=room.id)]) == 20
