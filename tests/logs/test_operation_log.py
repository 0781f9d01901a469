"""Every Rooms request, failures and auth failures included, leaves one ACS-schema log record."""
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from azure.communication.identity import CommunicationUserIdentifier
from azure.communication.rooms import RoomParticipant, ParticipantRole

from shared.logs.operations import read_operation_records

pytestmark = pytest.mark.stack


def records_for(stack_services, since, predicate, expected, timeout=10.0):
    table = stack_services.tables.table(stack_services.settings.table_name("RoomsOperations"))
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in read_operation_records(table, since=since) if predicate(r)]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_room_lifecycle_is_logged(rooms_client, stack_services):
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    people = [CommunicationUserIdentifier(f"8:acs:log_{i}") for i in range(3)]
    room = rooms_client.create_room(
        valid_until=datetime.now(timezone.utc) + timedelta(minutes=61),
        pstn_dial_out_enabled=True,
        participants=[RoomParticipant(communication_identifier=people[0], role=ParticipantRole.PRESENTER),
                      RoomParticipant(communication_identifier=people[1])],
    )
    rooms_client.get_room(room_id=room.id)
    rooms_client.add_or_update_participants(room_id=room.id, participants=[RoomParticipant(communication_identifier=people[2], role=ParticipantRole.CONSUMER)])
    rooms_client.remove_participants(room_id=room.id, participants=[people[1]])
    rooms_client.delete_room(room_id=room.id)
    found = records_for(stack_services, since, lambda r: r.get("RoomId") == room.id, 5)
    by_operation = {}
    for record in found:
        by_operation.setdefault(record["OperationName"], []).append(record)
    create = by_operation["CreateRoom"][0]
    assert create["ResultType"] == "Succeeded" and create["ResultSignature"] == "201"
    assert create["OperationVersion"] == "2025-03-13" and create["Type"] == "ACSRoomsIncomingOperations"
    assert create["RoomLifespan"] == 61 and create["PstnDialOutEnabled"] is True
    assert create["AddedRoomParticipantsCount"] == 2 and create["RoomParticipantsCount"] == 2
    assert (create["RoomParticipantsPresenter"], create["RoomParticipantsAttendee"]) == (1, 1)
    assert create["DurationMs"] > 0 and len(create["CorrelationId"]) == 22
    updates = by_operation["UpdateParticipants"]
    assert sorted((u["UpsertedRoomParticipantsCount"], u["RemovedRoomParticipantsCount"]) for u in updates) == [(0, 1), (1, 0)]
    assert by_operation["GetRoom"][0]["ResultSignature"] == "200"
    assert by_operation["DeleteRoom"][0]["ResultSignature"] == "204"


def test_failures_and_auth_failures_are_logged(stack, stack_services, rooms_client):
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    with pytest.raises(Exception):
        rooms_client.get_room(room_id="99999999999999998")
    requests.get(f"{stack.base_url}/rooms/99999999999999997?api-version=2024-04-15", verify=stack.ca_file, timeout=10)
    found = records_for(
        stack_services, since, lambda r: r.get("RoomId") in ("99999999999999998", "99999999999999997"), 2
    )
    statuses = sorted((r["RoomId"], r["ResultSignature"], r["ResultType"], r["OperationVersion"]) for r in found)
    assert statuses == [
        ("99999999999999997", "401", "Failed", "2024-04-15"),
        ("99999999999999998", "404", "Failed", "2025-03-13"),
    ]
