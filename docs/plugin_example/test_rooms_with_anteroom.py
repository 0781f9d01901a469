"""An outside project's tests against Anteroom, using only the fixtures of Anteroom's pytest plugin.

The README shows this file; tests/localdev/test_pytest_plugin.py runs it from a fresh virtualenv
outside the checkout, with Anteroom pip-installed there, as another project would.
"""


def test_a_room_call_starts_is_automated_and_ends(anteroom_webhook, anteroom_reset):
    anteroom = anteroom_reset                       # empty: no identities, rooms or subscriptions
    alice, bob = anteroom.user(), anteroom.user()   # ACS users with VoIP tokens
    room = anteroom.create_room({alice: "Presenter", bob: "Attendee"}, pstn_dial_out_enabled=True)

    assert alice.join(room.id).status_code == 200   # the first one in starts the call
    started = anteroom_webhook.wait_for("CallStarted")
    assert started[0]["data"]["room"]["id"] == room.id

    assert bob.join(room.id).json()["role"] == "Attendee"
    assert bob.act(room.id, "muteMic").json()["isMuted"] is True
    assert bob.act(room.id, "startScreenShare").status_code == 403  # an Attendee may not share

    # Call Automation through the official SDK (the instance's development CA is trusted). Callbacks
    # go to any URL: here the same recording webhook.
    properties = anteroom.call_automation.connect_call(anteroom_webhook.url, room_id=room.id)
    anteroom_webhook.wait_for("CallConnected")
    connection = anteroom.call_automation.get_call_connection(properties.call_connection_id)
    assert {p.identifier.raw_id for p in connection.list_participants()} == {alice.raw_id, bob.raw_id}

    assert bob.leave(room.id).status_code == 200
    anteroom_webhook.wait_for("CallParticipantRemoved",
                              where=lambda e: e["data"]["user"]["communicationIdentifier"]["rawId"] == bob.raw_id)
    assert alice.leave(room.id).status_code == 200
    anteroom_webhook.wait_for("CallEnded")


def test_each_test_starts_empty_and_tokens_can_be_short(anteroom_reset):
    assert list(anteroom_reset.rooms.list_rooms()) == []
    user = anteroom_reset.user()
    token = anteroom_reset.mint_token(user.raw_id, seconds=30)  # below the Identity API's one-hour minimum
    assert token["userId"] == user.raw_id
