"""Call events end to end: HTTP joins and leaves -> outbox -> local Event Grid topic -> a webhook, in ACS's schema.

The webhook's deliveries are decoded with azure-eventgrid's own models (EventGridEvent.from_json,
CloudEvent.from_dict) and every field is checked against the reference schema.
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.rooms import ParticipantRole, RoomsClient
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, SystemEventNames

from localdev.certs import ensure_dev_certificate
from localdev.testing import HostProcess
from tests.conftest import TEST_CERT_DIR

from tests.support.answers import ANSWERS
from tests.support.calls import new_user, roster
from tests.support.events import TopicSubscriptions, start_topic, wait_for_room_events

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
STARTED, ENDED = SystemEventNames.AcsCallStartedEventName, SystemEventNames.AcsCallEndedEventName
ADDED, REMOVED = SystemEventNames.AcsCallParticipantAddedEventName, SystemEventNames.AcsCallParticipantRemovedEventName
EVENT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z")
ZERO_GROUP = "00000000-0000-0000-0000-000000000000"
PRESENTER_NAME = "Zoë Presenter"


def arm_resource(resource_id: str) -> str:
    return (f"/subscriptions/{resource_id}/resourceGroups/anteroom/providers/"
            "Microsoft.Communication/communicationServices/anteroom")


def identifier(raw_id: str) -> dict:
    return {"kind": "communicationUser", "rawId": raw_id, "communicationUser": {"id": raw_id}}


def run_call(stack, rooms_client, identity_client):
    """A presenter starts a room call, an attendee joins and leaves, the presenter leaves: 6 events."""
    presenter, attendee = new_user(stack, identity_client), new_user(stack, identity_client)
    room = rooms_client.create_room(participants=roster((presenter, ParticipantRole.PRESENTER),
                                                        (attendee, ParticipantRole.ATTENDEE)))
    first = presenter.join(room.id, {"displayName": PRESENTER_NAME})
    assert first.status_code == 200, first.text
    second = attendee.join(room.id)  # without a display name
    assert second.status_code == 200, second.text
    call = presenter.call(room.id).json()
    assert attendee.me(room.id, "leave").status_code == 200
    assert presenter.me(room.id, "leave").status_code == 200
    return {
        "room": room.id, "presenter": presenter, "attendee": attendee, "serverCallId": first.json()["serverCallId"],
        "correlationId": call["correlationId"], "participantIds": {
            presenter.raw_id: first.json()["participantId"], attendee.raw_id: second.json()["participantId"]},
    }


def check_common(data: dict, run: dict) -> None:
    assert data["startedBy"] == {"communicationIdentifier": identifier(run["presenter"].raw_id), "role": "Presenter"}
    assert data["serverCallId"] == run["serverCallId"]
    assert data["correlationId"] == run["correlationId"]
    assert data["group"] == {"id": ZERO_GROUP}
    assert data["room"] == {"id": run["room"]}
    assert data["isTwoParty"] is False and data["isRoomsCall"] is True


def check_call_events(events: list[tuple[str, str, dict]], run: dict) -> None:
    """(type, subject, data) of the six events of `run_call`, whatever order they came in."""
    sid, presenter, attendee = run["serverCallId"], run["presenter"].raw_id, run["attendee"].raw_id
    by_kind: dict[tuple[str, str], dict] = {}
    for event_type, subject, data in events:
        check_common(data, run)
        by_kind[(event_type, subject)] = data
    assert set(by_kind) == {
        (STARTED, f"call/{sid}/startedBy/{presenter}"),
        (ADDED, f"call/{sid}/participant/{presenter}"), (ADDED, f"call/{sid}/participant/{attendee}"),
        (REMOVED, f"call/{sid}/participant/{attendee}"), (REMOVED, f"call/{sid}/participant/{presenter}"),
        (ENDED, f"call/{sid}"),
    }
    for user, role in ((presenter, "Presenter"), (attendee, "Attendee")):
        for kind in (ADDED, REMOVED):
            data = by_kind[(kind, f"call/{sid}/participant/{user}")]
            assert data["user"] == {"communicationIdentifier": identifier(user), "role": role}
            assert data["participantId"] == run["participantIds"][user]
            assert data.get("displayName") == (PRESENTER_NAME if user == presenter else None)
            assert data["userAgent"] == data["endpointType"] and data["userAgent"]
        removed = by_kind[(REMOVED, f"call/{sid}/participant/{user}")]
        assert removed["reason"] == {"code": 0, "subCode": 0, "phrase": "The participant left the call."}
    ended = by_kind[(ENDED, f"call/{sid}")]
    assert isinstance(ended["callDurationInSeconds"], float) and ended["callDurationInSeconds"] >= 0
    assert ended["durationOfCall"] == ended["callDurationInSeconds"]
    assert ended["endedBy"] == {"communicationIdentifier": identifier(presenter), "type": "Participant",
                                "name": PRESENTER_NAME}
    assert ended["reason"] == {"code": 0, "subCode": 0, "phrase": "Call ended because the last participant left."}


def check_event_time(text: str) -> None:
    assert EVENT_TIME.fullmatch(text), text  # ACS writes 7 fractional digits and Z
    moment = datetime.fromisoformat(text[:26] + "+00:00")
    assert abs(datetime.now(timezone.utc) - moment) < timedelta(minutes=5)


def test_event_grid_schema_events_of_a_room_call(stack, rooms_client, identity_client):
    with stack.events.subscribed() as subscriber:
        run = run_call(stack, rooms_client, identity_client)
        delivered = wait_for_room_events(subscriber, run["room"], 6)
    assert len(delivered) == 6 and len({e["id"] for e in delivered}) == 6  # no duplicates on a healthy path
    decoded = [EventGridEvent.from_json(json.dumps(raw)) for raw in delivered]
    for raw, event in zip(delivered, decoded):
        assert uuid.UUID(event.id)
        assert event.topic == arm_resource(stack.resource_id).lower()
        assert (event.data_version, event.metadata_version) == ("1.0", "1")
        check_event_time(raw["eventTime"])
        assert set(raw) == {"id", "topic", "subject", "eventType", "eventTime", "data", "dataVersion",
                            "metadataVersion"}
    check_call_events([(e.event_type, e.subject, e.data) for e in decoded], run)
    started = next(e for e in decoded if e.event_type == STARTED)
    ended = next(e for e in decoded if e.event_type == ENDED)
    assert started.event_time <= ended.event_time
    for record in subscriber.notifications:
        assert record.headers["aeg-event-type"] == "Notification"
        assert record.headers["aeg-subscription-name"] == subscriber.subscription_name.upper()
        assert record.headers["aeg-data-version"] == "1.0" and record.headers["aeg-metadata-version"] == "1"


def test_subject_filters_select_one_call(stack, rooms_client, identity_client):
    """Subscribers narrow by event type and subject like on Event Grid."""
    with stack.events.subscribed(includedEventTypes=[ENDED]) as only_ended, \
            stack.events.subscribed(subjectBeginsWith="CALL/", subjectEndsWith="") as everything, \
            stack.events.subscribed(subjectBeginsWith="call/none-such/") as nothing:
        run = run_call(stack, rooms_client, identity_client)
        assert len(wait_for_room_events(everything, run["room"], 6)) == 6
        [ended] = wait_for_room_events(only_ended, run["room"], 1)
        assert nothing.events() == []
    assert ended["eventType"] == ENDED and ended["subject"] == f"call/{run['serverCallId']}"


@pytest.fixture(scope="module")
def cloud_events_stack(stack, tmp_path_factory):
    """A second host publishing CloudEvents (own tables, own topic) on the session's Azurite."""
    certificate = ensure_dev_certificate(TEST_CERT_DIR)
    topic = start_topic(tmp_path_factory.mktemp("eventgrid-ce"), certificate)
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {**stack.env, "ANTEROOM_TABLE_PREFIX": "cloudevents", "ANTEROOM_ACCESS_KEY": key,
           "ANTEROOM_SECONDARY_ACCESS_KEY": "", "ANTEROOM_RESOURCE_ID": str(uuid.uuid4()),
           "ANTEROOM_EVENTGRID_SCHEMA": "CloudEventSchemaV1_0",
           "ANTEROOM_EVENTGRID_ENDPOINT": topic.topic.endpoint, "ANTEROOM_EVENTGRID_KEY": topic.topic.key}
    host = HostProcess("function_app:app", ROOT, env, certificate.ca_cert.parent).start()
    ANSWERS.serve(host.base_url, str(certificate.ca_cert))
    ANSWERS.tooling(topic.topic.endpoint.split("/api/")[0], "Event Grid topic")
    subscriptions = TopicSubscriptions(topic)
    try:
        yield host, env, subscriptions
    finally:
        subscriptions.close()
        host.stop()
        topic.stop()


def test_cloud_events_schema_events_of_a_room_call(stack, cloud_events_stack):
    host, env, subscriptions = cloud_events_stack
    connection_string = f"endpoint={host.base_url}/;accesskey={env['ANTEROOM_ACCESS_KEY']}"
    local = type(stack)(**{**stack.__dict__, "base_url": host.base_url, "resource_id": env["ANTEROOM_RESOURCE_ID"]})
    subscriber = subscriptions.subscribe("CloudEventSchemaV1_0")
    run = run_call(local, RoomsClient.from_connection_string(connection_string),
                   CommunicationIdentityClient.from_connection_string(connection_string))
    delivered = wait_for_room_events(subscriber, run["room"], 6)
    assert len(delivered) == 6 and len({e["id"] for e in delivered}) == 6
    for record in subscriber.notifications:
        assert record.content_type.startswith("application/cloudevents+json") and isinstance(record.body, dict)
    decoded = [CloudEvent.from_dict(raw) for raw in delivered]
    for raw, event in zip(delivered, decoded):
        assert raw["specversion"] == "1.0" and uuid.UUID(event.id)
        assert event.source == arm_resource(env["ANTEROOM_RESOURCE_ID"])  # ACS keeps the case in CloudEvents
        assert event.time is not None and abs(datetime.now(timezone.utc) - event.time) < timedelta(minutes=5)
    check_call_events([(e.type, e.subject, e.data) for e in decoded], run)
