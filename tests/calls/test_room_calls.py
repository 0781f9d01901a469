"""Room calls: invite-only joining, every role x every operation, tokens, roster changes, concurrency."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from azure.communication.identity import CommunicationTokenScope, CommunicationUserIdentifier
from azure.communication.rooms import ParticipantRole

from tests.support.calls import CallUser, new_user, participant_states, phone, put_rule, roster

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("hang_up_phones")]

ROLES = [ParticipantRole.PRESENTER, ParticipantRole.ATTENDEE, ParticipantRole.CONSUMER, ParticipantRole.COLLABORATOR]
# operation -> (capability it needs, roles allowed by ACS's role table)
EVERY_ROLE = {"Presenter", "Attendee", "Consumer", "Collaborator"}
MATRIX = {
    "muteMic": (None, EVERY_ROLE),  # turning one's own media off needs no capability
    "unmuteMic": ("unmuteMic", {"Presenter", "Attendee", "Collaborator"}),
    "startVideo": ("turnVideoOn", {"Presenter", "Attendee", "Collaborator"}),
    "stopVideo": (None, EVERY_ROLE),
    "startScreenShare": ("shareScreen", {"Presenter", "Collaborator"}),
    "stopScreenShare": (None, EVERY_ROLE),
    "muteRemote": ("muteOthers", {"Presenter"}),
    "removeRemote": ("removeParticipant", {"Presenter"}),
    "invite": ("addCommunicationUser", {"Presenter"}),
    "dialOut": ("addPhoneNumber", {"Presenter"}),
    "leave": (None, EVERY_ROLE),
}


def perform(operation, actor, room_id, target_participant, invitee, stack):
    if operation in ("muteRemote", "removeRemote"):
        return actor.on(room_id, target_participant, "mute" if operation == "muteRemote" else "remove")
    if operation == "invite":
        return actor.request("POST", f"/roomCalls/{room_id}/invitations", {"rawId": invitee.raw_id})
    if operation == "dialOut":
        return actor.request(
            "POST", f"/roomCalls/{room_id}/dialOut", {"phoneNumber": "+14255550123", "callerIdNumber": stack.caller_number}
        )
    return actor.me(room_id, operation)


@pytest.mark.parametrize("operation", list(MATRIX))
@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value)
def test_role_matrix(stack, rooms_client, identity_client, role, operation):
    actor, target, invitee = (new_user(stack, identity_client) for _ in range(3))
    room = rooms_client.create_room(
        pstn_dial_out_enabled=True,
        participants=roster((actor, role), (target, ParticipantRole.ATTENDEE), (invitee, ParticipantRole.ATTENDEE)),
    )
    joined = actor.join(room.id)
    assert joined.status_code == 200, joined.text
    capability, allowed = MATRIX[operation]
    assert (capability in joined.json()["capabilities"]) == (role.value in allowed) or capability is None
    target_id = target.join(room.id).json()["participantId"]
    before = participant_states(actor.call(room.id))

    response = perform(operation, actor, room.id, target_id, invitee, stack)

    if role.value in allowed:
        assert response.status_code in (200, 201), response.text
    else:
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "MissingCapability" and error["target"] == capability
        assert capability in error["message"]
        assert participant_states(actor.call(room.id)) == before  # a refusal changes nothing


def test_join_answer_and_first_join_starts_the_call(stack, rooms_client, identity_client):
    presenter, attendee = new_user(stack, identity_client), new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((presenter, ParticipantRole.PRESENTER), (attendee, ParticipantRole.ATTENDEE)))
    first = presenter.join(room.id).json()
    assert first["role"] == "Presenter" and "muteOthers" in first["capabilities"]
    assert "addPhoneNumber" not in first["capabilities"]  # the room does not allow dial-out
    second = attendee.join(room.id).json()
    assert second["serverCallId"] == first["serverCallId"]
    assert sorted(second["capabilities"]) == ["turnVideoOn", "unmuteMic"]
    call = attendee.call(room.id).json()
    assert call["state"] == "active" and len(call["participants"]) == 2
    assert {p["role"] for p in call["participants"]} == {"Presenter", "Attendee"}
    again = attendee.join(room.id).json()
    assert again["participantId"] == second["participantId"]  # joining twice is idempotent


@pytest.mark.parametrize("bad", ["", "   ", "x" * 257, 42, ["Ada"], "Ada\u0000", "Ada\nLovelace", "\u202eadA"],
                         ids=["empty", "blank", "257 characters", "number", "list", "nul", "newline", "bidi override"])
def test_an_invalid_display_name_is_refused_and_nothing_stored(stack, rooms_client, identity_client, bad):
    user = new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((user, ParticipantRole.PRESENTER)))
    refused = user.join(room.id, {"displayName": bad})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "BadRequest" and refused.json()["error"]["target"] == "displayName"
    assert user.call(room.id).status_code == 404  # no call was started


def test_a_display_name_given_at_join_is_shown(stack, rooms_client, identity_client):
    named, unnamed = new_user(stack, identity_client), new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((named, ParticipantRole.PRESENTER), (unnamed, ParticipantRole.ATTENDEE)))
    longest = "Zoë " + "ñ" * 252  # 256 characters, ACS's limit
    joined = named.join(room.id, {"displayName": longest})
    assert joined.status_code == 200, joined.text
    assert [p.get("displayName") for p in joined.json()["call"]["participants"]] == [longest]
    assert unnamed.join(room.id).status_code == 200  # the name is optional
    assert named.join(room.id, {"displayName": "Someone else"}).status_code == 200  # joining again keeps the first
    shown = {p["identifier"]["rawId"]: p.get("displayName") for p in unnamed.call(room.id).json()["participants"]}
    assert shown == {named.raw_id: longest, unnamed.raw_id: None}


def test_invite_only(stack, rooms_client, identity_client):
    member, stranger = new_user(stack, identity_client), new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((member, ParticipantRole.ATTENDEE)))
    refused = stranger.join(room.id)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "NotInvited"
    assert stranger.call(room.id).status_code == 403
    assert member.join(room.id).status_code == 200


def test_token_checks(stack, rooms_client, identity_client):
    user, token = identity_client.create_user_and_token([CommunicationTokenScope.VOIP_JOIN])
    caller = CallUser(user.raw_id, token.token, stack.base_url, stack.ca_file)
    room = rooms_client.create_room(participants=roster((caller, ParticipantRole.ATTENDEE)))
    assert caller.join(room.id).status_code == 200  # voip.join is enough
    forged = CallUser(user.raw_id, token.token[:-4] + "AAAA", stack.base_url, stack.ca_file)
    assert forged.join(room.id).status_code == 401
    anonymous = CallUser(user.raw_id, "", stack.base_url, stack.ca_file)
    response = anonymous.request("POST", f"/roomCalls/{room.id}/join")
    assert response.status_code == 401 and response.json()["error"]["code"] == "Denied"
    chat_user, chat_token = identity_client.create_user_and_token([CommunicationTokenScope.CHAT])
    chat = CallUser(chat_user.raw_id, chat_token.token, stack.base_url, stack.ca_file)
    assert chat.join(room.id).json()["error"]["code"] == "InsufficientScope"
    identity_client.revoke_tokens(user)
    assert caller.join(room.id).status_code == 401
    caller.token = identity_client.get_token(user, [CommunicationTokenScope.VOIP]).token
    assert caller.call(room.id).status_code == 200
    identity_client.delete_user(user)
    assert caller.call(room.id).status_code == 401


def test_role_change_applies_to_the_next_action(stack, rooms_client, identity_client):
    user = new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((user, ParticipantRole.PRESENTER)))
    user.join(room.id)
    rooms_client.add_or_update_participants(room_id=room.id, participants=roster((user, ParticipantRole.ATTENDEE)))
    refused = user.me(room.id, "startScreenShare")
    assert refused.status_code == 403 and refused.json()["error"]["target"] == "shareScreen"
    assert [p["role"] for p in user.call(room.id).json()["participants"]] == ["Attendee"]


def media(call_answer, raw_id: str) -> tuple[bool, bool, bool]:
    endpoint = next(p for p in call_answer.json()["participants"] if p["identifier"]["rawId"] == raw_id)
    return endpoint["isMuted"], endpoint["isVideoOn"], endpoint["isScreenSharing"]


def test_a_consumer_joins_muted_with_video_and_sharing_off_and_may_turn_off_anything(stack, rooms_client, identity_client):
    consumer, attendee = new_user(stack, identity_client), new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((consumer, ParticipantRole.CONSUMER), (attendee, ParticipantRole.ATTENDEE)))
    joined = consumer.join(room.id).json()
    assert joined["capabilities"] == []
    assert media(consumer.call(room.id), consumer.raw_id) == (True, False, False)
    assert attendee.join(room.id).status_code == 200
    assert media(attendee.call(room.id), attendee.raw_id) == (False, False, False)  # Attendees join unmuted
    for action in ("muteMic", "stopVideo", "stopScreenShare"):  # off is always allowed, whatever the role
        answer = consumer.me(room.id, action)
        assert answer.status_code == 200, (action, answer.text)
    assert consumer.me(room.id, "unmuteMic").json()["error"]["code"] == "MissingCapability"
    assert media(consumer.call(room.id), consumer.raw_id) == (True, False, False)


def test_a_role_change_turns_off_what_the_new_role_lacks_at_once(stack, rooms_client, identity_client):
    sharer, speaker, watcher = (new_user(stack, identity_client) for _ in range(3))
    room = rooms_client.create_room(participants=roster(
        (sharer, ParticipantRole.COLLABORATOR), (speaker, ParticipantRole.ATTENDEE), (watcher, ParticipantRole.PRESENTER)))
    for user in (sharer, speaker, watcher):
        assert user.join(room.id).status_code == 200
    for user, action in ((sharer, "startScreenShare"), (sharer, "startVideo"), (speaker, "startVideo")):
        assert user.me(room.id, action).status_code == 200
    assert media(watcher.call(room.id), sharer.raw_id) == (False, True, True)
    assert media(watcher.call(room.id), speaker.raw_id) == (False, True, False)

    # Through the official Rooms SDK: a Collaborator sharing made Attendee, an Attendee talking on video made Consumer.
    rooms_client.add_or_update_participants(room_id=room.id, participants=roster(
        (sharer, ParticipantRole.ATTENDEE), (speaker, ParticipantRole.CONSUMER)))
    seen = watcher.call(room.id)
    assert media(seen, sharer.raw_id) == (False, True, False)  # an Attendee keeps mic and video, not the share
    assert media(seen, speaker.raw_id) == (True, False, False)
    for user, action in ((sharer, "stopScreenShare"), (speaker, "muteMic"), (speaker, "stopVideo")):
        answer = user.me(room.id, action)
        assert answer.status_code == 200, (action, answer.text)
    assert sharer.me(room.id, "startScreenShare").status_code == 403
    assert speaker.me(room.id, "startVideo").status_code == 403


def test_roster_removal_drops_the_user_from_the_call(stack, rooms_client, identity_client):
    stays, goes = new_user(stack, identity_client), new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((stays, ParticipantRole.ATTENDEE), (goes, ParticipantRole.ATTENDEE)))
    stays.join(room.id)
    gone_id = goes.join(room.id).json()["participantId"]
    rooms_client.remove_participants(room_id=room.id, participants=[CommunicationUserIdentifier(goes.raw_id)])
    call = stays.call(room.id).json()
    gone = next(p for p in call["participants"] if p["participantId"] == gone_id)
    assert gone["state"] == "disconnected" and gone["leaveReason"] == "removedFromRoom"
    assert call["state"] == "active"
    assert goes.me(room.id, "muteMic").status_code == 403


def test_room_deletion_ends_the_call_which_stays_readable(stack, rooms_client, identity_client):
    user, stranger = new_user(stack, identity_client), new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((user, ParticipantRole.PRESENTER)))
    server_call_id = user.join(room.id).json()["serverCallId"]
    rooms_client.delete_room(room_id=room.id)
    read = user.call(room.id)
    assert read.status_code == 200, read.text
    call = read.json()
    assert (call["serverCallId"], call["state"], call["endReason"]) == (server_call_id, "ended", "roomDeleted")
    assert [(p["state"], p["leaveReason"]) for p in call["participants"]] == [("disconnected", "roomDeleted")]
    assert stranger.call(room.id).json()["error"]["code"] == "NotInvited"  # still only the roster's
    assert user.join(room.id).status_code == 404  # the room itself is gone
    assert user.me(room.id, "muteMic").status_code == 404
    never_called = rooms_client.create_room(participants=roster((user, ParticipantRole.PRESENTER)))
    rooms_client.delete_room(room_id=never_called.id)
    assert user.call(never_called.id).status_code == 404


def test_last_leave_ends_the_call_and_next_join_starts_a_new_one(stack, rooms_client, identity_client):
    a, b = new_user(stack, identity_client), new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((a, ParticipantRole.ATTENDEE), (b, ParticipantRole.ATTENDEE)))
    first_call = a.join(room.id).json()["serverCallId"]
    b.join(room.id)
    a.me(room.id, "leave")
    assert b.call(room.id).json()["state"] == "active"
    b.me(room.id, "leave")
    ended = b.call(room.id).json()
    assert ended["state"] == "ended" and ended["endReason"] == "lastParticipantLeft"
    assert a.join(room.id).json()["serverCallId"] != first_call


def test_dial_out_needs_the_room_flag(stack, rooms_client, identity_client):
    presenter = new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((presenter, ParticipantRole.PRESENTER)))
    presenter.join(room.id)
    body = {"phoneNumber": "+14255550123", "callerIdNumber": stack.caller_number}
    refused = presenter.request("POST", f"/roomCalls/{room.id}/dialOut", body)
    assert refused.status_code == 403 and "pstnDialOutEnabled" in refused.json()["error"]["message"]
    rooms_client.update_room(room_id=room.id, pstn_dial_out_enabled=True)
    assert presenter.request("POST", f"/roomCalls/{room.id}/dialOut", body).status_code == 200


def test_fifty_simultaneous_joins_make_one_call(stack, rooms_client, identity_client, stack_services):
    users = [new_user(stack, identity_client) for _ in range(50)]
    room = rooms_client.create_room()
    for start in range(0, 50, 25):
        rooms_client.add_or_update_participants(
            room_id=room.id, participants=roster(*((u, ParticipantRole.ATTENDEE) for u in users[start:start + 25]))
        )
    answers = [None] * 50
    barrier = threading.Barrier(50)

    def join(index):
        barrier.wait()
        answers[index] = users[index].join(room.id)

    threads = [threading.Thread(target=join, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:3]
    assert len({a.json()["serverCallId"] for a in answers}) == 1
    assert len({a.json()["participantId"] for a in answers}) == 50
    call = stack_services.calls.current_call(room.id)
    assert call.connected == 50 and len(call.participants) == 50 and call.sequence == 50


@pytest.fixture
def pstn_room(stack, rooms_client, identity_client):
    presenter = new_user(stack, identity_client)
    room = rooms_client.create_room(pstn_dial_out_enabled=True, participants=roster((presenter, ParticipantRole.PRESENTER)))
    presenter.join(room.id)
    return presenter, room.id


def dial(stack, presenter, room_id, number, caller=None):
    body = {"phoneNumber": number, "callerIdNumber": caller or stack.caller_number}
    return presenter.request("POST", f"/roomCalls/{room_id}/dialOut", body)


def test_phone_participant_joins_and_may_only_mute_itself(stack, pstn_room):
    presenter, room_id = pstn_room
    answer = dial(stack, presenter, room_id, "+14255550001").json()
    assert answer["outcome"] == "answered"
    phone_id = answer["participant"]["participantId"]
    assert answer["participant"]["identifier"] == {"kind": "phoneNumber", "rawId": "4:+14255550001", "phoneNumber": {"value": "+14255550001"}}
    listed = next(p for p in presenter.call(room_id).json()["participants"] if p["participantId"] == phone_id)
    assert listed["role"] is None and listed["state"] == "connected"
    assert phone(stack, "+14255550001", "muteMic").json()["isMuted"] is True
    assert phone(stack, "+14255550001", "unmuteMic").json()["isMuted"] is False
    for action in ("startVideo", "startScreenShare"):
        refused = phone(stack, "+14255550001", action)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "MissingCapability"
    assert phone(stack, "+14255550001", "leave").status_code == 200
    gone = next(p for p in presenter.call(room_id).json()["participants"] if p["participantId"] == phone_id)
    assert gone["state"] == "disconnected" and gone["leaveReason"] == "phoneHungUp"


@pytest.mark.parametrize("behaviour, outcome", [("decline", "declined"), ("busy", "busy"), ("noAnswer", "noAnswer")])
def test_phones_that_do_not_answer(stack, pstn_room, behaviour, outcome):
    presenter, room_id = pstn_room
    number = {"decline": "+14255550011", "busy": "+14255550012", "noAnswer": "+14255550013"}[behaviour]
    put_rule(stack, number, behaviour)
    answer = dial(stack, presenter, room_id, number).json()
    assert answer == {"outcome": outcome}
    assert all(p["identifier"]["rawId"] != f"4:{number}" for p in presenter.call(room_id).json()["participants"])


@pytest.mark.parametrize(
    "number, caller, target",
    [("14255550123", None, "phoneNumber"), ("+0123", None, "phoneNumber"), ("+14255550123", "+19999999999", "callerIdNumber")],
)
def test_dial_out_validation(stack, pstn_room, number, caller, target):
    presenter, room_id = pstn_room
    refused = dial(stack, presenter, room_id, number, caller)
    assert refused.status_code == 400 and refused.json()["error"]["target"] == target


def test_two_concurrent_calls_per_caller_number(stack, pstn_room):
    presenter, room_id = pstn_room
    caller = "+18005550101"
    assert dial(stack, presenter, room_id, "+14255550021", caller).json()["outcome"] == "answered"
    assert dial(stack, presenter, room_id, "+14255550022", caller).json()["outcome"] == "answered"
    third = dial(stack, presenter, room_id, "+14255550023", caller)
    assert third.status_code == 409 and third.json()["error"]["code"] == "ConcurrentCallLimitReached"
    phone(stack, "+14255550021", "leave")
    assert dial(stack, presenter, room_id, "+14255550023", caller).json()["outcome"] == "answered"
