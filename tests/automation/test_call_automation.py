"""Call Automation on room calls through Microsoft's azure-communication-callautomation SDK, callbacks included."""
from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from azure.communication.callautomation import (
    CallAutomationClient,
    CallConnectionClient,
    CommunicationUserIdentifier,
    PhoneNumberIdentifier,
)
from azure.communication.callautomation._generated import models as callback_models
from azure.communication.rooms import ParticipantRole
from azure.core.exceptions import HttpResponseError
from azure.core.messaging import CloudEvent

from shared.core.timefmt import format_imf_fixdate

from tests.support.calls import new_user, put_rule, roster

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("hang_up_phones")]
WAIT = 90  # seconds: two cores shared with other test runs


class CallbackReceiver:
    """An HTTP server on 127.0.0.1 standing in for the application's callback endpoint.

    Every POST must be a JSON array of CloudEvents; each is parsed with azure-core's CloudEvent and
    its data with the Call Automation SDK's own event model for its type. `fail_next` answers that
    many requests with 500 first, to show that delivery is retried.
    """

    def __init__(self) -> None:
        self.events: list[tuple[CloudEvent, object]] = []
        self.authorizations: list[str | None] = []
        self.fail_next = 0
        self.refused_connections: list[str] = []  # callConnectionId of each event in a request answered 500
        self._condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._condition:
                    receiver.authorizations.append(self.headers.get("Authorization"))
                    if receiver.fail_next:
                        receiver.fail_next -= 1
                        receiver.refused_connections += [item.get("data", {}).get("callConnectionId") for item in body]
                        self.send_response(500)
                        self.end_headers()
                        return
                    assert isinstance(body, list) and self.headers["Content-Type"] == "application/json"
                    for item in body:
                        event = CloudEvent.from_dict(item)
                        model = getattr(callback_models, event.type.removeprefix("Microsoft.Communication."))
                        receiver.events.append((event, model.deserialize(event.data)))
                    receiver._condition.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/callbacks"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def of(self, connection_id: str, name: str | None = None) -> list:
        with self._condition:
            return [
                (event, data) for event, data in self.events
                if data.call_connection_id == connection_id and (name is None or event.type.endswith("." + name))
            ]

    def wait_for(self, connection_id: str, name: str, count: int = 1, timeout: float = WAIT) -> list:
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.of(connection_id, name)) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"no {name} for {connection_id}; got {[e.type for e, _ in self.events]}"
                self._condition.wait(left)
        return self.of(connection_id, name)

    def close(self) -> None:
        self._server.shutdown()
        # Close the socket too: the app's late callbacks are then refused at once instead of
        # waiting in the listen backlog for an answer that never comes.
        self._server.server_close()


@pytest.fixture(scope="module")
def receiver():
    server = CallbackReceiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def automation(stack):
    return CallAutomationClient.from_connection_string(stack.connection_string)


def unique_number() -> str:
    return "+1425" + str(uuid.uuid4().int)[:7]


@pytest.fixture
def live_room(stack, rooms_client, identity_client):
    """A dial-out room whose call a presenter has started; answers (room, presenter, serverCallId)."""
    presenter = new_user(stack, identity_client)
    room = rooms_client.create_room(pstn_dial_out_enabled=True, participants=roster((presenter, ParticipantRole.PRESENTER)))
    joined = presenter.join(room.id)
    assert joined.status_code == 200, joined.text
    return room, presenter, joined.json()["serverCallId"]


def connect(automation, receiver, room_id: str):
    properties = automation.connect_call(receiver.url, room_id=room_id, operation_context="connect")
    return properties, automation.get_call_connection(properties.call_connection_id)


def test_connect_dial_out_mute_remove_and_terminate(stack, automation, receiver, live_room):
    room, presenter, server_call_id = live_room
    properties, connection = connect(automation, receiver, room.id)
    assert properties.server_call_id == server_call_id and properties.call_connection_state == "connected"
    assert properties.callback_url == receiver.url
    connection_id = properties.call_connection_id
    envelope, connected = receiver.wait_for(connection_id, "CallConnected")[0]
    assert envelope.source == envelope.subject == f"calling/callConnections/{connection_id}"
    assert envelope.specversion == "1.0" and envelope.datacontenttype == "application/json"
    assert connected.server_call_id == server_call_id and connected.operation_context == "connect"
    assert connected.result_information.code == 200
    first_update = receiver.wait_for(connection_id, "ParticipantsUpdated")[0][1]
    assert [p.identifier.raw_id for p in first_update.participants] == [presenter.raw_id]

    phone = unique_number()
    added = connection.add_participant(
        PhoneNumberIdentifier(phone), source_caller_id_number=PhoneNumberIdentifier(stack.caller_number),
        operation_context="dial-out",
    )
    assert added.invitation_id and added.participant.identifier.raw_id == f"4:{phone}"
    succeeded = receiver.wait_for(connection_id, "AddParticipantSucceeded")[0][1]
    assert succeeded.participant.raw_id == f"4:{phone}" and succeeded.operation_context == "dial-out"
    assert succeeded.correlation_id == connected.correlation_id and succeeded.result_information.code == 200
    updates = receiver.wait_for(connection_id, "ParticipantsUpdated", 2)
    assert {p.identifier.raw_id for p in updates[-1][1].participants} == {presenter.raw_id, f"4:{phone}"}

    # What Call Automation did is the room call's own state.
    room_call = presenter.call(room.id).json()
    assert any(p["identifier"]["rawId"] == f"4:{phone}" and p["state"] == "connected" for p in room_call["participants"])
    assert {p.identifier.raw_id for p in connection.list_participants()} == {presenter.raw_id, f"4:{phone}"}
    assert connection.get_participant(PhoneNumberIdentifier(phone)).is_muted is False

    connection.mute_participant(PhoneNumberIdentifier(phone), operation_context="hush")
    assert connection.get_participant(PhoneNumberIdentifier(phone)).is_muted is True
    muted_update = receiver.wait_for(connection_id, "ParticipantsUpdated", 3)[-1][1]
    assert [p.is_muted for p in muted_update.participants if p.identifier.raw_id == f"4:{phone}"] == [True]

    connection.remove_participant(PhoneNumberIdentifier(phone), operation_context="bye")
    removed = receiver.wait_for(connection_id, "RemoveParticipantSucceeded")[0][1]
    assert removed.participant.raw_id == f"4:{phone}" and removed.operation_context == "bye"
    assert [p.identifier.raw_id for p in connection.list_participants()] == [presenter.raw_id]

    connection.hang_up(is_for_everyone=True)
    receiver.wait_for(connection_id, "CallDisconnected")
    assert presenter.call(room.id).json()["state"] == "ended"
    with pytest.raises(HttpResponseError) as caught:
        connection.list_participants().next()
    assert caught.value.status_code == 404


def test_a_participant_muting_itself_reaches_the_application(stack, automation, receiver, live_room):
    room, presenter, _ = live_room
    properties, connection = connect(automation, receiver, room.id)
    connection_id = properties.call_connection_id
    receiver.wait_for(connection_id, "ParticipantsUpdated")
    assert presenter.me(room.id, "muteMic").status_code == 200
    muted = receiver.wait_for(connection_id, "ParticipantsUpdated", 2)[-1][1]
    assert [(p.identifier.raw_id, p.is_muted) for p in muted.participants] == [(presenter.raw_id, True)]
    assert connection.get_participant(CommunicationUserIdentifier(presenter.raw_id)).is_muted is True
    assert presenter.me(room.id, "unmuteMic").status_code == 200
    unmuted = receiver.wait_for(connection_id, "ParticipantsUpdated", 3)[-1][1]
    assert [p.is_muted for p in unmuted.participants] == [False]
    assert unmuted.sequence_number > muted.sequence_number
    # Video is no business of Call Automation: no update for it.
    assert presenter.me(room.id, "startVideo").status_code == 200
    assert presenter.me(room.id, "muteMic").status_code == 200
    updates = receiver.wait_for(connection_id, "ParticipantsUpdated", 4)
    assert len(updates) == 4 and [p.is_muted for p in updates[-1][1].participants] == [True]


def test_a_role_change_that_mutes_reaches_the_application(stack, automation, receiver, rooms_client, identity_client, live_room):
    room, presenter, _ = live_room
    attendee = new_user(stack, identity_client)
    rooms_client.add_or_update_participants(room_id=room.id, participants=roster((attendee, ParticipantRole.ATTENDEE)))
    assert attendee.join(room.id).status_code == 200  # joins unmuted
    properties, connection = connect(automation, receiver, room.id)
    connection_id = properties.call_connection_id
    first = receiver.wait_for(connection_id, "ParticipantsUpdated")[0][1]
    assert {(p.identifier.raw_id, p.is_muted) for p in first.participants} == {(presenter.raw_id, False), (attendee.raw_id, False)}
    rooms_client.add_or_update_participants(room_id=room.id, participants=roster((attendee, ParticipantRole.CONSUMER)))
    update = receiver.wait_for(connection_id, "ParticipantsUpdated", 2)[-1][1]
    assert {(p.identifier.raw_id, p.is_muted) for p in update.participants} == {(presenter.raw_id, False), (attendee.raw_id, True)}
    assert update.sequence_number > first.sequence_number
    assert connection.get_participant(CommunicationUserIdentifier(attendee.raw_id)).is_muted is True


def test_callbacks_carry_a_token_that_the_published_keys_verify(stack, automation, receiver, live_room):
    room, _, _ = live_room
    properties, _ = connect(automation, receiver, room.id)
    receiver.wait_for(properties.call_connection_id, "ParticipantsUpdated")
    discovery = requests.get(f"{stack.base_url}/calling/.well-known/acsopenidconfiguration",
                             verify=stack.ca_file, timeout=10)
    assert discovery.status_code == 200, discovery.text
    configuration = discovery.json()
    assert configuration["issuer"] == "https://acscallautomation.communication.azure.com"
    assert configuration["jwks_uri"] == f"{stack.base_url}/calling/keys"
    keys = jwt.PyJWKSet.from_dict(requests.get(configuration["jwks_uri"], verify=stack.ca_file, timeout=10).json())
    with receiver._condition:
        authorizations = list(receiver.authorizations)
    assert authorizations and all(a and a.startswith("Bearer ") for a in authorizations)
    tokens = [a.removeprefix("Bearer ") for a in authorizations]
    assert len(set(tokens)) == len(tokens)  # a token of its own for every request
    for token in tokens[-2:]:
        key = keys[jwt.get_unverified_header(token)["kid"]]
        claims = jwt.decode(token, key=key, algorithms=["RS256"], audience=stack.resource_id,
                            issuer=configuration["issuer"])
        assert claims["exp"] - claims["iat"] == 300
    # Another resource's audience, or a tampered token, does not verify.
    token = tokens[-1]
    key = keys[jwt.get_unverified_header(token)["kid"]]
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key=key, algorithms=["RS256"], audience=str(uuid.uuid4()))
    head, payload, signature = token.split(".")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{head}.{payload}.{signature[:-4]}AAAA", key=key, algorithms=["RS256"], audience=stack.resource_id)


@pytest.mark.parametrize("behaviour, code, sub_code", [
    ("decline", 603, 8538), ("busy", 486, 8539), ("noAnswer", 408, 8541),
])
def test_phone_that_does_not_answer(stack, automation, receiver, live_room, behaviour, code, sub_code):
    room, presenter, _ = live_room
    properties, connection = connect(automation, receiver, room.id)
    phone = put_rule(stack, unique_number(), behaviour)
    connection.add_participant(
        PhoneNumberIdentifier(phone), source_caller_id_number=PhoneNumberIdentifier(stack.caller_number),
        operation_context=behaviour,
    )
    failed = receiver.wait_for(properties.call_connection_id, "AddParticipantFailed")[0][1]
    assert failed.participant.raw_id == f"4:{phone}" and failed.operation_context == behaviour
    assert (failed.result_information.code, failed.result_information.sub_code) == (code, sub_code)
    assert [p.identifier.raw_id for p in connection.list_participants()] == [presenter.raw_id]
    # The room call keeps the ended invitation, with the dial outcome as its documented leaveReason.
    ended = endpoint_of(presenter.call(room.id), f"4:{phone}")
    reason = {"decline": "declined", "busy": "busy", "noAnswer": "noAnswer"}[behaviour]
    assert (ended["state"], ended["leaveReason"]) == ("disconnected", reason)


def test_cancel_add_while_ringing(stack, automation, receiver, live_room):
    room, presenter, _ = live_room
    properties, connection = connect(automation, receiver, room.id)
    phone = put_rule(stack, unique_number(), "answer", ring_seconds=4)
    added = connection.add_participant(
        PhoneNumberIdentifier(phone), source_caller_id_number=PhoneNumberIdentifier(stack.caller_number)
    )
    assert any(p["state"] == "ringing" for p in presenter.call(room.id).json()["participants"])
    result = connection.cancel_add_participant_operation(added.invitation_id, operation_context="never mind")
    assert result.invitation_id == added.invitation_id
    cancelled = receiver.wait_for(properties.call_connection_id, "CancelAddParticipantSucceeded")[0][1]
    assert cancelled.invitation_id == added.invitation_id and cancelled.operation_context == "never mind"
    time.sleep(6)  # the phone answers after 4 s: too late, it stays out of the call
    assert receiver.of(properties.call_connection_id, "AddParticipantSucceeded") == []
    assert [p.identifier.raw_id for p in connection.list_participants()] == [presenter.raw_id]
    assert endpoint_of(presenter.call(room.id), f"4:{phone}")["leaveReason"] == "cancelled"
    assert status_of(lambda: connection.cancel_add_participant_operation(added.invitation_id)) == (404, "8522")


def test_add_a_roster_user_who_then_joins(stack, stack_services, automation, receiver, rooms_client, identity_client, live_room):
    room, presenter, _ = live_room
    guest, stranger = new_user(stack, identity_client), new_user(stack, identity_client)
    rooms_client.add_or_update_participants(room_id=room.id, participants=roster((guest, ParticipantRole.ATTENDEE)))
    properties, connection = connect(automation, receiver, room.id)
    added = connection.add_participant(CommunicationUserIdentifier(guest.raw_id), operation_context="invite")
    assert added.participant.identifier.raw_id == guest.raw_id
    assert guest.join(room.id).status_code == 200
    succeeded = receiver.wait_for(properties.call_connection_id, "AddParticipantSucceeded")[0][1]
    assert succeeded.participant.raw_id == guest.raw_id and succeeded.operation_context == "invite"
    # Not on the roster: ACS's "invalid ACS target identity", and the stranger is not rung.
    assert status_of(lambda: connection.add_participant(CommunicationUserIdentifier(stranger.raw_id))) == (403, "7602")
    assert stranger.raw_id not in room_call_raw_ids(presenter, room.id)

    connection.remove_participant(CommunicationUserIdentifier(guest.raw_id))
    receiver.wait_for(properties.call_connection_id, "RemoveParticipantSucceeded")
    # The room-call code produced the call events of what Call Automation did.
    events = [(e.event_type, e.data) for e in stack_services.outbox.history(room_id=room.id)]
    guest_events = [(kind, data) for kind, data in events if data.get("user", {}).get("communicationIdentifier", {}).get("rawId") == guest.raw_id]
    assert [kind.rsplit(".", 1)[1] for kind, _ in guest_events] == ["CallParticipantAdded", "CallParticipantRemoved"]
    assert guest_events[1][1]["reason"]["subCode"] == 5300


def test_unanswered_invitation_fails_after_its_timeout(stack, automation, receiver, rooms_client, identity_client, live_room):
    room, presenter, _ = live_room
    sleeper = new_user(stack, identity_client)
    rooms_client.add_or_update_participants(room_id=room.id, participants=roster((sleeper, ParticipantRole.ATTENDEE)))
    properties, connection = connect(automation, receiver, room.id)
    connection.add_participant(CommunicationUserIdentifier(sleeper.raw_id), invitation_timeout=1, operation_context="wake up")
    # The sweep runs every 30 s; the invitation then ends as unanswered.
    failed = receiver.wait_for(properties.call_connection_id, "AddParticipantFailed")[0][1]
    assert failed.participant.raw_id == sleeper.raw_id and failed.operation_context == "wake up"
    assert (failed.result_information.code, failed.result_information.sub_code) == (408, 8541)
    assert all(p["state"] != "ringing" for p in presenter.call(room.id).json()["participants"])


def test_hang_up_leaves_the_call_to_the_others(stack, automation, receiver, live_room):
    room, presenter, _ = live_room
    properties, connection = connect(automation, receiver, room.id)
    other, _ = connect(automation, receiver, room.id)
    connection.hang_up(is_for_everyone=False)
    receiver.wait_for(properties.call_connection_id, "CallDisconnected")
    assert presenter.call(room.id).json()["state"] == "active"
    assert automation.get_call_connection(other.call_connection_id).list_participants().next() is not None
    assert presenter.me(room.id, "leave").status_code == 200  # the last one out ends the call
    receiver.wait_for(other.call_connection_id, "CallDisconnected")


@pytest.mark.parametrize("for_everyone", [False, True], ids=["hang_up", "terminate"])
def test_an_ended_connection_is_not_found(stack, automation, receiver, live_room, for_everyone):
    # ACS's own live tests (Azure.Communication.CallAutomation, CallAutomationClientLiveTests) expect
    # 404 from GetCallConnectionProperties once the connection hung up; every operation agrees here.
    room, presenter, _ = live_room
    properties, connection = connect(automation, receiver, room.id)
    _, other = connect(automation, receiver, room.id)  # keeps the call going after a plain hang-up
    connection.hang_up(is_for_everyone=for_everyone)
    receiver.wait_for(properties.call_connection_id, "CallDisconnected")
    assert status_of(connection.get_call_properties) == (404, "8522")
    assert status_of(lambda: connection.list_participants().next()) == (404, "8522")
    assert status_of(lambda: connection.add_participant(CommunicationUserIdentifier(presenter.raw_id))) == (404, "8522")
    connection.hang_up(is_for_everyone=False)  # a retried hang-up still succeeds
    if not for_everyone:
        assert other.get_call_properties().call_connection_state == "connected"


def test_callbacks_are_retried_until_delivered(stack, automation, receiver, live_room):
    room, _, _ = live_room
    receiver.fail_next = 2
    properties, _ = connect(automation, receiver, room.id)
    connected = receiver.wait_for(properties.call_connection_id, "CallConnected")
    assert len({event.id for event, _ in connected}) == 1
    with receiver._condition:  # both failures were answered, at least one of them to this connection's callbacks
        assert receiver.fail_next == 0 and properties.call_connection_id in receiver.refused_connections


def test_repeated_connect_answers_the_same_connection(stack, automation, receiver, live_room):
    room, _, _ = live_room
    headers = {"Repeatability-Request-ID": str(uuid.uuid4()), "Repeatability-First-Sent": format_imf_fixdate(datetime.now(timezone.utc))}
    first = automation.connect_call(receiver.url, room_id=room.id, headers=dict(headers))
    again = automation.connect_call(receiver.url, room_id=room.id, headers=dict(headers))
    assert again.call_connection_id == first.call_connection_id


def test_repeated_add_dials_once(stack, automation, receiver, live_room):
    room, presenter, _ = live_room
    properties, connection = connect(automation, receiver, room.id)
    headers = {"Repeatability-Request-ID": str(uuid.uuid4()), "Repeatability-First-Sent": format_imf_fixdate(datetime.now(timezone.utc))}
    phone, caller = PhoneNumberIdentifier(unique_number()), PhoneNumberIdentifier(stack.caller_number)
    first = connection.add_participant(phone, source_caller_id_number=caller, headers=dict(headers))
    again = connection.add_participant(phone, source_caller_id_number=caller, headers=dict(headers))
    assert again.invitation_id == first.invitation_id
    receiver.wait_for(properties.call_connection_id, "AddParticipantSucceeded")
    assert [c.target for c in stack.pstn.calls].count(phone.raw_id.removeprefix("4:")) == 1
    other_body = PhoneNumberIdentifier(unique_number())
    assert status_of(lambda: connection.add_participant(other_body, source_caller_id_number=caller, headers=dict(headers)))[0] == 400
    # The other body's number was neither rung in the room call nor dialled.
    assert other_body.raw_id not in room_call_raw_ids(presenter, room.id)
    assert other_body.raw_id.removeprefix("4:") not in [c.target for c in list(stack.pstn.calls)]


def status_of(action) -> tuple[int, str]:
    with pytest.raises(HttpResponseError) as caught:
        action()
    return caught.value.status_code, caught.value.error.code


def endpoint_of(room_call: requests.Response, raw_id: str) -> dict:
    """The endpoint of `raw_id` in a `GET /roomCalls/{roomId}` answer."""
    return next(p for p in room_call.json()["participants"] if p["identifier"]["rawId"] == raw_id)


def room_call_raw_ids(presenter, room_id: str) -> list[str]:
    """Every endpoint of the room call, ringing and departed ones too (Call Automation lists connected ones only)."""
    answer = presenter.call(room_id)
    assert answer.status_code == 200, answer.text
    return sorted(p["identifier"]["rawId"] for p in answer.json()["participants"])


def dial_out_state(stack, presenter, room_id: str, connection, ringing: tuple[str, ...] = ()) -> tuple:
    """What a refused add must leave as it was: the calls the PSTN network placed, the connection's
    participants and the room call's endpoints. The calls and joins of the numbers in `ringing`
    (rung on purpose, answering in their own time) are left out; their endpoints are in from the start."""
    return (
        len([c for c in list(stack.pstn.calls) if c.target not in ringing]),
        sorted(raw for raw in (p.identifier.raw_id for p in connection.list_participants())
               if raw.removeprefix("4:") not in ringing),
        room_call_raw_ids(presenter, room_id),
    )


def no_call(user, room_id: str) -> tuple[int, str | None]:
    """The status and error code of asking for the room's call: (404, "NotFound") while it has none."""
    answer = user.call(room_id)
    return answer.status_code, answer.json().get("error", {}).get("code")


def test_refusals(stack, automation, receiver, rooms_client, identity_client, live_room):
    room, presenter, _ = live_room
    _, connection = connect(automation, receiver, room.id)
    caller = PhoneNumberIdentifier(stack.caller_number)

    # A refused add leaves everything as it was, and the refused number is never dialled.
    before = dial_out_state(stack, presenter, room.id, connection)
    assert status_of(lambda: connection.add_participant(PhoneNumberIdentifier("0123"), source_caller_id_number=caller)) == (400, "8523")
    assert dial_out_state(stack, presenter, room.id, connection) == before
    unknown_caller_target = unique_number()
    assert status_of(lambda: connection.add_participant(
        PhoneNumberIdentifier(unknown_caller_target), source_caller_id_number=PhoneNumberIdentifier("+19995550000"))) == (400, "8523")
    assert dial_out_state(stack, presenter, room.id, connection) == before

    # Two lines per caller number: the third simultaneous call from it is refused.
    second_number = PhoneNumberIdentifier("+18005550101")
    ringing = [put_rule(stack, unique_number(), "answer", ring_seconds=5) for _ in range(2)]
    for number in ringing:
        connection.add_participant(PhoneNumberIdentifier(number), source_caller_id_number=second_number)
    before = dial_out_state(stack, presenter, room.id, connection, tuple(ringing))
    third = unique_number()
    assert status_of(lambda: connection.add_participant(
        PhoneNumberIdentifier(third), source_caller_id_number=second_number)) == (409, "8530")
    assert dial_out_state(stack, presenter, room.id, connection, tuple(ringing)) == before

    closed = rooms_client.create_room(pstn_dial_out_enabled=False, participants=roster((presenter, ParticipantRole.PRESENTER)))
    assert presenter.join(closed.id).status_code == 200
    _, closed_connection = connect(automation, receiver, closed.id)
    before = dial_out_state(stack, presenter, closed.id, closed_connection, tuple(ringing))
    not_enabled = unique_number()
    assert status_of(lambda: closed_connection.add_participant(PhoneNumberIdentifier(not_enabled), source_caller_id_number=caller)) == (403, "7504")
    assert dial_out_state(stack, presenter, closed.id, closed_connection, tuple(ringing)) == before
    placed = [c.target for c in list(stack.pstn.calls)]
    assert not {"0123", unknown_caller_target, third, not_enabled} & set(placed), placed

    unknown = CallConnectionClient.from_connection_string(stack.connection_string, "bm90LWEtY29ubmVjdGlvbg")
    assert status_of(unknown.get_call_properties) == (404, "8522")
    assert status_of(lambda: automation.connect_call(receiver.url, room_id="99000000000000000")) == (404, "8522")
    assert status_of(lambda: automation.connect_call(receiver.url, room_id="not-a-room")) == (404, "8522")
    idle = rooms_client.create_room(participants=roster((presenter, ParticipantRole.PRESENTER)))
    assert no_call(presenter, idle.id) == (404, "NotFound")
    assert status_of(lambda: automation.connect_call(receiver.url, room_id=idle.id)) == (404, "8522")
    assert no_call(presenter, idle.id) == (404, "NotFound")  # connecting started no call


def test_expired_room(stack, automation, receiver, rooms_client, identity_client):
    presenter = new_user(stack, identity_client)
    valid_until = datetime.now(timezone.utc) + timedelta(seconds=6)
    room = rooms_client.create_room(
        valid_from=valid_until - timedelta(minutes=1), valid_until=valid_until,
        participants=roster((presenter, ParticipantRole.PRESENTER)),
    )
    assert presenter.join(room.id).status_code == 200
    time.sleep(max(0.0, (valid_until - datetime.now(timezone.utc)).total_seconds()) + 1)
    assert status_of(lambda: automation.connect_call(receiver.url, room_id=room.id)) == (400, "8528")
