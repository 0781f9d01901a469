"""Call events survive faults: a subscriber or the topic down for a while, the app host SIGKILLed
mid-batch, Azurite restarted. Afterwards every stored event is delivered, ids are unique, and a
duplicate only ever repeats an event with its id.

These run on a stack of their own (Azurite with a data folder, topic, host), never the session's.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.rooms import ParticipantRole, RoomsClient

from localdev.azurite import AzuriteTable
from localdev.certs import ensure_dev_certificate
from localdev.eventgrid import TopicThread
from localdev.testing import HostProcess
from tests.conftest import TEST_CERT_DIR

from tests.support.answers import ANSWERS
from tests.support.calls import new_user, roster
from tests.support.events import TopicSubscriptions, start_topic

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FaultStack:
    base_url: str
    ca_file: str
    settings: dict
    azurite: AzuriteTable
    topic: TopicThread
    events: TopicSubscriptions
    host: HostProcess

    @property
    def connection_string(self) -> str:
        return f"endpoint={self.base_url}/;accesskey={self.settings['ANTEROOM_ACCESS_KEY']}"

    def clients(self):
        return (RoomsClient.from_connection_string(self.connection_string),
                CommunicationIdentityClient.from_connection_string(self.connection_string))

    @contextlib.contextmanager
    def app_services(self):
        """The app's own services on this stack's storage, to look behind the API."""
        from shared.bootstrap import build_services
        from shared.config.settings import Settings

        services = build_services(Settings.from_env(self.settings, served_at=self.base_url))
        try:
            yield services
        finally:
            services.close()

    def pending_events(self, room_ids) -> int:
        """How many outbox rows still wait for the dispatcher (none once it caught up)."""
        with self.app_services() as services:
            return sum(len(services.outbox.pending(room)) for room in room_ids)

    def stored_events(self, room_ids) -> dict[str, dict]:
        """Every event the app committed for these rooms (its outbox), by id."""
        with self.app_services() as services:
            return {e.id: {"type": e.event_type, "subject": e.subject}
                    for room in room_ids for e in services.outbox.history(room_id=room)}


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    state = tmp_path_factory.mktemp("event-faults")
    certificate = ensure_dev_certificate(TEST_CERT_DIR)
    azurite = AzuriteTable(certificate=certificate, location=state / "azurite").start()
    topic = start_topic(state / "eventgrid", certificate)
    settings = {
        "ANTEROOM_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "ANTEROOM_ACCESS_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "ANTEROOM_RESOURCE_ID": str(uuid.uuid4()),
        "ANTEROOM_TOKEN_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "ANTEROOM_EVENTGRID_ENDPOINT": topic.topic.endpoint,
        "ANTEROOM_EVENTGRID_KEY": topic.topic.key,
    }
    host = HostProcess("function_app:app", ROOT, settings, certificate.ca_cert.parent).start()
    ANSWERS.serve(host.base_url, str(certificate.ca_cert))
    ANSWERS.tooling(topic.topic.endpoint.split("/api/")[0], "Event Grid topic")
    ANSWERS.tooling(azurite.endpoint, "Azurite")
    stack = FaultStack(host.base_url, str(certificate.ca_cert), settings, azurite, topic, TopicSubscriptions(topic),
                       host)
    try:
        yield stack
    finally:
        stack.events.close()
        stack.host.stop()
        stack.topic.stop()
        stack.azurite.stop()


def start_call(stack, rooms, identity, users=2):
    people = [new_user(stack, identity) for _ in range(users)]
    room = rooms.create_room(participants=roster(*[(p, ParticipantRole.PRESENTER) for p in people]))
    return room.id, people


def join_all(room_id, people):
    for person in people:
        assert person.join(room_id).status_code == 200


def leave_all(room_id, people):
    for person in people:
        assert person.me(room_id, "leave").status_code == 200


def assert_delivered_exactly(stack, subscriber, room_ids, expected=None, timeout=90.0):
    """Every stored event of the rooms arrives; returns how many duplicates (same id, same body) came."""
    stored = stack.stored_events(room_ids)
    if expected is not None:
        assert len(stored) == expected
    subscriber.wait_for(lambda events: set(stored) <= {e["id"] for e in events}, timeout)
    time.sleep(0.5)
    received = [e for e in subscriber.events() if e["data"]["room"]["id"] in room_ids]
    by_id: dict[str, list[dict]] = {}
    for event in received:
        by_id.setdefault(event["id"], []).append(event)
    assert set(by_id) == set(stored)  # nothing lost, nothing invented
    for event_id, copies in by_id.items():
        assert all(json.dumps(c, sort_keys=True) == json.dumps(copies[0], sort_keys=True) for c in copies)
        assert (copies[0]["eventType"], copies[0]["subject"]) == (stored[event_id]["type"], stored[event_id]["subject"])
    return len(received) - len(by_id)


def test_subscriber_down_for_a_while(faults):
    rooms, identity = faults.clients()
    with faults.events.subscribed() as subscriber:
        subscriber.stop()
        room_id, people = start_call(faults, rooms, identity)
        join_all(room_id, people)
        leave_all(room_id, people)
        # The topic retries on the (scaled) schedule meanwhile; all six wait for the subscriber.
        deadline = time.monotonic() + 30
        while faults.topic.topic.pending_count(subscriber.subscription_name) < 6:
            assert time.monotonic() < deadline, "the six events never reached the topic"
            time.sleep(0.1)
        time.sleep(1)  # and no seventh: each join and leave gives exactly one event
        assert faults.topic.topic.pending_count(subscriber.subscription_name) == 6
        subscriber.start()  # same port
        assert_delivered_exactly(faults, subscriber, {room_id}, expected=6)


def test_topic_down_for_a_while(faults):
    rooms, identity = faults.clients()
    with faults.events.subscribed() as subscriber:
        faults.topic.stop()
        room_id, people = start_call(faults, rooms, identity)
        join_all(room_id, people)  # answered although nothing can be published
        leave_all(room_id, people)
        time.sleep(3)
        assert subscriber.events() == []
        faults.topic.start()  # same port, same key, same subscriptions
        assert_delivered_exactly(faults, subscriber, {room_id}, expected=6)


def test_host_killed_mid_batch_and_restarted(faults):
    rooms, identity = faults.clients()
    subscriber = faults.events.subscribe()
    calls = [start_call(faults, rooms, identity, users=3) for _ in range(6)]
    stop = threading.Event()

    def churn(room_id, people):
        # Join and leave until stopped; requests cut off by the kill simply fail.
        while not stop.is_set():
            for person in people:
                for action in (person.join, lambda r, p=person: p.me(r, "leave")):
                    try:
                        action(room_id)
                    except requests.RequestException:
                        time.sleep(0.1)

    workers = [threading.Thread(target=churn, args=call, daemon=True) for call in calls]
    try:
        for worker in workers:
            worker.start()
        time.sleep(2.5)
        os.killpg(faults.host.process.pid, signal.SIGKILL)
        faults.host.stop()
        left_behind = faults.pending_events({room_id for room_id, _ in calls})
        faults.host.start()  # the outbox sweep runs at start-up
        time.sleep(1.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    room_ids = {room_id for room_id, _ in calls}
    duplicates = assert_delivered_exactly(faults, subscriber, room_ids)
    assert len(faults.stored_events(room_ids)) > 20
    faults.events.unsubscribe(subscriber)
    print(f"SIGKILL mid-batch: {left_behind} outbox rows (up to 30 events each) left pending by the kill, "
          f"{duplicates} duplicate deliveries (same ids)")


def test_azurite_restarted_with_its_data_folder(faults):
    rooms, identity = faults.clients()
    with faults.events.subscribed() as subscriber:
        room_id, people = start_call(faults, rooms, identity)
        join_all(room_id, people)
        port, location = faults.azurite.port, faults.azurite.location
        faults.azurite.stop()
        time.sleep(1)
        faults.azurite = AzuriteTable(certificate=faults.azurite.certificate, location=location, port=port).start()
        leave_all(room_id, people)  # the call, stored before the restart, is still there
        second_room, second_people = start_call(faults, rooms, identity)
        join_all(second_room, second_people)
        leave_all(second_room, second_people)
        assert_delivered_exactly(faults, subscriber, {room_id, second_room}, expected=12)
