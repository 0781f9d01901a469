"""Replays of stored call events reach a webhook in the shape the local Event Grid topic delivers them, in both schemas."""
from __future__ import annotations

import pytest
from azure.communication.rooms import ParticipantRole

from localdev.eventgrid.subscriber import WebhookSubscriber
from tests.support.calls import new_user, roster
from tests.support.events import wait_for_room_events
from tests.support.hmac_client import HmacClient

pytestmark = pytest.mark.stack

# What differs between two deliveries of one event by design: who delivered it and when.
DELIVERY_HEADERS = {"aeg-event-type", "aeg-output-event-id", "aeg-data-version", "aeg-metadata-version"}


def short_call(stack, rooms_client, identity_client) -> str:
    """A presenter starts and ends a call: CallStarted, CallParticipantAdded, CallParticipantRemoved, CallEnded."""
    presenter = new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((presenter, ParticipantRole.PRESENTER)))
    assert presenter.join(room.id).status_code == 200
    assert presenter.me(room.id, "leave").status_code == 200
    return room.id


@pytest.mark.parametrize("schema", ["EventGridSchema", "CloudEventSchemaV1_0"])
def test_a_replay_posts_each_event_as_the_topic_delivers_it(stack, rooms_client, identity_client, schema):
    with stack.events.subscribed(schema) as live:
        room_id = short_call(stack, rooms_client, identity_client)
        delivered = wait_for_room_events(live, room_id, 4)
        with WebhookSubscriber() as target:
            answer = HmacClient(stack).send("POST", "/callEvents:replay",
                                            {"roomId": room_id, "endpoint": target.url, "schema": schema})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"replayed": 4, "failed": 0}
            target.wait_for_count(4)
            replayed = list(target.notifications)
        assert target.validations == []  # no handshake before a replay
    by_id = {record.events[0]["id"]: record for record in live.notifications}
    assert {r.events[0]["id"] for r in replayed} == {e["id"] for e in delivered}  # the original ids
    type_key = "type" if schema == "CloudEventSchemaV1_0" else "eventType"
    assert [r.events[0][type_key].rsplit(".", 1)[1] for r in replayed] == [  # commit order
        "CallStarted", "CallParticipantAdded", "CallParticipantRemoved", "CallEnded"]
    for record in replayed:
        original = by_id[record.events[0]["id"]]
        assert record.content_type == original.content_type
        assert type(record.body) is type(original.body)  # a one-element array, or the CloudEvent itself
        assert len(record.events) == 1
        for key in (type_key, "subject", "data"):
            assert record.events[0][key] == original.events[0][key]
        assert {h: record.headers.get(h) for h in DELIVERY_HEADERS} == \
            {h: original.headers.get(h) for h in DELIVERY_HEADERS}
        assert record.headers["aeg-delivery-count"] == "0"
    if schema == "CloudEventSchemaV1_0":
        assert all(r.content_type.startswith("application/cloudevents+json") and isinstance(r.body, dict)
                   for r in replayed)
    else:
        assert all(r.content_type.startswith("application/json") and len(r.body) == 1 for r in replayed)
