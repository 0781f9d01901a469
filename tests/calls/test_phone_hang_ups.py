"""When the app ends a phone's part of a room call, the PSTN gateway (the simulator) is told: its leg ends there too.

Each path that ends a phone from the app's side: a Presenter removing it, Call Automation removing it
or ending the call for everyone, the room deleted or expired, an invitation cancelled while it
rings. The simulator's own `GET /calls` shows each leg's state, as a client would read it.
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from azure.communication.callautomation import CallAutomationClient, PhoneNumberIdentifier
from azure.communication.rooms import ParticipantRole

from localdev.eventgrid.subscriber import WebhookSubscriber
from tests.support.calls import new_user, phone, put_rule, roster

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("hang_up_phones")]
WAIT = 60  # seconds: two cores shared with other test runs


def unique_number() -> str:
    return "+1425" + str(uuid.uuid4().int)[:7]


def leg(stack, number: str) -> dict | None:
    """The simulator's newest leg to `number`, from its HTTP API."""
    legs = [c for c in requests.get(f"{stack.pstn.url}/calls", timeout=30).json() if c["target"] == number]
    return legs[-1] if legs else None


def wait_for_leg(stack, number: str, state: str, outcome: str | None = None) -> dict:
    deadline = time.monotonic() + WAIT
    while True:
        current = leg(stack, number)
        if current is not None and current["state"] == state and (outcome is None or current["outcome"] == outcome):
            return current
        assert time.monotonic() < deadline, f"the leg to {number} is {current}, not {state}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def callbacks():
    with WebhookSubscriber() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def automation(stack):
    return CallAutomationClient.from_connection_string(stack.connection_string)


@pytest.fixture
def dialled(stack, rooms_client, identity_client):
    """A dial-out room's call with a presenter and an answered phone; answers (room id, presenter, number, phone's participant id)."""
    presenter = new_user(stack, identity_client)
    room = rooms_client.create_room(pstn_dial_out_enabled=True, participants=roster((presenter, ParticipantRole.PRESENTER)))
    assert presenter.join(room.id).status_code == 200
    number = unique_number()
    answer = presenter.request("POST", f"/roomCalls/{room.id}/dialOut",
                               {"phoneNumber": number, "callerIdNumber": stack.caller_number})
    assert answer.status_code == 200 and answer.json()["outcome"] == "answered", answer.text
    assert wait_for_leg(stack, number, "connected")["reference"].startswith(room.id + "|")
    return room.id, presenter, number, answer.json()["participant"]["participantId"]


def test_a_presenter_removing_a_phone_hangs_up_its_leg(stack, dialled):
    room_id, presenter, number, participant_id = dialled
    assert presenter.on(room_id, participant_id, "remove").status_code == 200
    wait_for_leg(stack, number, "ended")


def test_call_automation_removing_a_phone_hangs_up_its_leg(stack, automation, callbacks, dialled):
    room_id, _, number, _ = dialled
    connection = automation.get_call_connection(
        automation.connect_call(callbacks.url, room_id=room_id).call_connection_id)
    connection.remove_participant(PhoneNumberIdentifier(number))
    wait_for_leg(stack, number, "ended")


def test_ending_the_call_for_everyone_hangs_up_every_leg(stack, automation, callbacks, dialled):
    room_id, presenter, number, _ = dialled
    second = unique_number()
    assert presenter.request("POST", f"/roomCalls/{room_id}/dialOut",
                             {"phoneNumber": second, "callerIdNumber": stack.caller_number}).status_code == 200
    connection = automation.get_call_connection(
        automation.connect_call(callbacks.url, room_id=room_id).call_connection_id)
    connection.hang_up(is_for_everyone=True)
    wait_for_leg(stack, number, "ended")
    wait_for_leg(stack, second, "ended")


def test_deleting_the_room_hangs_up_its_phones(stack, rooms_client, dialled):
    room_id, _, number, _ = dialled
    rooms_client.delete_room(room_id)
    wait_for_leg(stack, number, "ended")


def test_the_room_expiring_hangs_up_its_phones(stack, rooms_client, identity_client):
    presenter = new_user(stack, identity_client)
    valid_until = datetime.now(timezone.utc) + timedelta(seconds=4)
    room = rooms_client.create_room(valid_from=valid_until - timedelta(minutes=1), valid_until=valid_until,
                                    pstn_dial_out_enabled=True, participants=roster((presenter, ParticipantRole.PRESENTER)))
    assert presenter.join(room.id).status_code == 200
    number = unique_number()
    assert presenter.request("POST", f"/roomCalls/{room.id}/dialOut",
                             {"phoneNumber": number, "callerIdNumber": stack.caller_number}).status_code == 200
    time.sleep(max(0.0, (valid_until - datetime.now(timezone.utc)).total_seconds()) + 0.5)
    assert presenter.call(room.id).json()["endReason"] == "roomExpired"  # the first access after the window ends it
    wait_for_leg(stack, number, "ended")


def test_a_cancelled_invitation_stops_the_leg_ringing(stack, automation, callbacks, rooms_client, identity_client):
    presenter = new_user(stack, identity_client)
    room = rooms_client.create_room(pstn_dial_out_enabled=True, participants=roster((presenter, ParticipantRole.PRESENTER)))
    assert presenter.join(room.id).status_code == 200
    number = put_rule(stack, unique_number(), "answer", ring_seconds=3)
    connection = automation.get_call_connection(
        automation.connect_call(callbacks.url, room_id=room.id).call_connection_id)
    added = connection.add_participant(PhoneNumberIdentifier(number),
                                       source_caller_id_number=PhoneNumberIdentifier(stack.caller_number))
    wait_for_leg(stack, number, "ringing")
    connection.cancel_add_participant_operation(added.invitation_id)
    # Hung up while it rang: it never answers, and the app's call does not get it.
    assert wait_for_leg(stack, number, "ended", outcome="cancelled")["state"] == "ended"
    assert all(p["identifier"]["rawId"] != f"4:{number}" or p["state"] == "disconnected"
               for p in presenter.call(room.id).json()["participants"])


def test_a_phone_hanging_up_itself_ends_its_leg_once(stack, dialled):
    room_id, presenter, number, participant_id = dialled
    assert phone(stack, number, "leave").status_code == 200
    assert leg(stack, number)["state"] == "ended"
    states = {p["participantId"]: p["state"] for p in presenter.call(room_id).json()["participants"]}
    assert states[participant_id] == "disconnected"
