"""A room's call events reach a webhook of the local topic in commit order, a commit's own events in theirs, over many calls."""
from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.communication.rooms import ParticipantRole

from tests.support.calls import new_user, roster
from tests.support.events import events_of_room

pytestmark = pytest.mark.stack

ROOMS = 24  # calls per run; with delivery unordered, 20 of 24 came out of order


def kinds(events: list[dict]) -> list[str]:
    return [e["eventType"].rsplit(".", 1)[1] for e in events]


EXPECTED = ["CallStarted", "CallParticipantAdded", "CallParticipantAdded",
            "CallParticipantRemoved", "CallParticipantRemoved", "CallEnded"]


def two_in_a_call(stack, rooms_client, identity_client):
    first, second = new_user(stack, identity_client), new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((first, ParticipantRole.PRESENTER),
                                                        (second, ParticipantRole.ATTENDEE)))
    for user in (first, second):
        assert user.join(room.id).status_code == 200
    return room.id, first, second


def call_ended_by_leaving(stack, rooms_client, identity_client) -> str:
    room_id, first, second = two_in_a_call(stack, rooms_client, identity_client)
    for user in (second, first):  # the last leave commits CallParticipantRemoved and CallEnded together
        assert user.me(room_id, "leave").status_code == 200
    return room_id


def call_ended_by_deleting_the_room(stack, rooms_client, identity_client) -> str:
    room_id, _, _ = two_in_a_call(stack, rooms_client, identity_client)
    rooms_client.delete_room(room_id)  # one commit: both removed, then the call ended
    return room_id


def test_each_rooms_events_arrive_in_commit_order(stack, rooms_client, identity_client):
    scenarios = [call_ended_by_leaving, call_ended_by_deleting_the_room] * (ROOMS // 2)
    with stack.events.subscribed() as subscriber:
        # Handling takes a varying time, as in a real subscriber: events posted at once finish in any order.
        subscriber.handling_seconds = lambda: random.uniform(0, 0.02)
        with ThreadPoolExecutor(4) as pool:  # rooms at once, so the topic has several to deliver at a time
            runs = list(pool.map(lambda scenario: scenario(stack, rooms_client, identity_client), scenarios))
        subscriber.wait_for(lambda events: len({e["id"] for e in events}) >= 6 * ROOMS, timeout=120)
        out_of_order = {}
        for room_id in runs:
            received = events_of_room(subscriber, room_id)
            assert len({e["id"] for e in received}) == 6
            if kinds(received) != EXPECTED:
                out_of_order[room_id] = kinds(received)
    assert out_of_order == {}, f"{len(out_of_order)} of {ROOMS} rooms out of order: {out_of_order}"
