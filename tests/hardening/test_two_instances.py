"""Two host processes on one Azurite, requests spread across both: concurrent writers lose nothing, events go out once."""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Sequence

import pytest
import requests
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.communication.rooms import (
    CommunicationUserIdentifier, ParticipantRole, RoomParticipant, RoomsClient,
)

from localdev.azurite import AzuriteTable
from localdev.certs import ensure_dev_certificate
from localdev.eventgrid import EventGridTopic, TopicThread
from localdev.eventgrid.subscriber import WebhookSubscriber
from localdev.settings import acs_connection_string, generate_app_settings
from localdev.testing import HostProcess
from shared.events.model import CALL_ENDED, CALL_STARTED, PARTICIPANT_ADDED, PARTICIPANT_REMOVED
from shared.auth.hmac import sign_headers
from shared.core.timefmt import format_imf_fixdate
from tests.conftest import ROOT, TEST_CERT_DIR
from tests.support.answers import ANSWERS

ROSTER_WRITERS = 24
CALLERS = 16
# The machine has two cores shared with other test runs: generous, the tests take seconds when idle.
REQUEST_TIMEOUT = 120


@dataclass
class TwoInstances:
    """Azurite, one Event Grid topic with a recording webhook, and two hosts with the same settings."""

    azurite: AzuriteTable
    hosts: list[HostProcess]
    settings: dict[str, str]
    subscriber: WebhookSubscriber
    ca_file: str

    def base_url(self, index: int) -> str:
        return self.hosts[index % len(self.hosts)].base_url

    def connection_string(self, index: int) -> str:
        return acs_connection_string(self.base_url(index), self.settings["ANTEROOM_ACCESS_KEY"])

    def rooms_client(self, index: int) -> RoomsClient:
        return RoomsClient.from_connection_string(self.connection_string(index))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    certificate = ensure_dev_certificate(TEST_CERT_DIR)
    topic_key = base64.b64encode(secrets.token_bytes(32)).decode()
    subscriber = WebhookSubscriber().start()
    topic = EventGridTopic(tmp_path_factory.mktemp("topic"), key=topic_key, certificate=certificate)
    runner = TopicThread(topic)
    runner.start()
    azurite = AzuriteTable(certificate=certificate).start()
    hosts: list[HostProcess] = []
    try:
        states = runner.call(topic.set_subscriptions([{
            "name": "two-instances",
            "destination": {"endpointType": "WebHook", "endpointUrl": subscriber.url},
            "eventDeliverySchema": "EventGridSchema",
        }]))
        assert states == {"two-instances": "active"}, states
        settings = {
            **generate_app_settings(azurite.connection_string),
            "ANTEROOM_EVENTGRID_ENDPOINT": topic.endpoint,
            "ANTEROOM_EVENTGRID_KEY": topic_key,
        }
        for _ in range(2):
            host = HostProcess("function_app:app", Path(ROOT), settings, certificate.ca_cert.parent,
                               startup_timeout=60)
            hosts.append(host)
            host.start()
            ANSWERS.serve(host.base_url, str(certificate.ca_cert))
        ANSWERS.tooling(azurite.endpoint, "Azurite")
        ANSWERS.tooling(topic.endpoint.split("/api/")[0], "Event Grid topic")
        ANSWERS.tooling(subscriber.url, "test webhooks (the topic delivering)")
        yield TwoInstances(azurite, hosts, settings, subscriber, str(certificate.ca_cert))
    finally:
        for host in hosts:
            host.stop()
        azurite.stop()
        runner.stop()
        subscriber.stop()


@pytest.fixture(scope="module")
def services(pair):
    """The app's own services on the pair's storage, to look behind the API."""
    from shared.bootstrap import build_services
    from shared.config.settings import Settings

    built = build_services(Settings.from_env(pair.settings, served_at=pair.base_url(0)))
    yield built
    built.close()


@pytest.fixture(scope="module")
def identity(pair):
    return CommunicationIdentityClient.from_connection_string(pair.connection_string(0))


def all_at_once(tasks: Sequence[Callable[[], object]]) -> list:
    """Run every task on its own thread, released together by a barrier; re-raise the first failure."""
    barrier = threading.Barrier(len(tasks))
    results: list = [None] * len(tasks)
    failures: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = tasks[index]()
        except BaseException as error:  # reported below, on the test's thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads), "a request never came back"
    if failures:
        raise failures[0]
    return results


def user_ids(pair, count: int) -> list[str]:
    return [f"8:acs:{pair.settings['ANTEROOM_RESOURCE_ID']}_{uuid.uuid4()}" for _ in range(count)]


def roster_of(client: RoomsClient, room_id: str) -> dict[str, str]:
    return {p.communication_identifier.raw_id: p.role for p in client.list_participants(room_id=room_id)}


def test_concurrent_roster_updates_on_both_instances_lose_none(pair):
    room_id = pair.rooms_client(0).create_room().id
    users = user_ids(pair, ROSTER_WRITERS)
    clients = [pair.rooms_client(index) for index in range(ROSTER_WRITERS)]  # even to one host, odd to the other

    def add(index: int):
        participant = RoomParticipant(communication_identifier=CommunicationUserIdentifier(users[index]),
                                      role=ParticipantRole.ATTENDEE)
        return clients[index].add_or_update_participants(room_id=room_id, participants=[participant])

    all_at_once([lambda index=index: add(index) for index in range(ROSTER_WRITERS)])
    for reader in (0, 1):  # both instances read the same roster
        assert roster_of(pair.rooms_client(reader), room_id) == {user: "Attendee" for user in users}

    leaving = users[::2]
    all_at_once([
        lambda index=index: clients[index].remove_participants(
            room_id=room_id, participants=[CommunicationUserIdentifier(users[index])])
        for index in range(0, ROSTER_WRITERS, 2)
    ])
    assert roster_of(pair.rooms_client(1), room_id) == {user: "Attendee" for user in users if user not in leaving}


class SignedClient:
    """HMAC-signed raw requests, for headers the SDK sets itself (it picks its own repeatability id)."""

    def __init__(self, pair, index: int) -> None:
        self.base = pair.base_url(index)
        self.key = base64.b64decode(pair.settings["ANTEROOM_ACCESS_KEY"])
        self.ca_file = pair.ca_file

    def post(self, path: str, body: dict, headers: dict) -> requests.Response:
        url = self.base + path
        data = json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **headers,
                **sign_headers(self.key, "POST", url, data, format_imf_fixdate(datetime.now(timezone.utc)))}
        return requests.post(url, data=data, headers=sent, verify=self.ca_file, timeout=REQUEST_TIMEOUT)


def room_ids(services) -> set[str]:
    table = services.tables.table(services.settings.table_name("Rooms"))
    return {entity["PartitionKey"]
            for entity in table.query_entities("RowKey eq 'room'", select=["PartitionKey"])}


def test_repeatable_create_sent_to_both_instances_at_once_makes_one_room(pair, services):
    clients = [SignedClient(pair, 0), SignedClient(pair, 1)]
    before = room_ids(services)
    answers = []
    for _ in range(5):  # several ids: each is one more chance for the two first attempts to collide
        headers = {"Repeatability-Request-ID": str(uuid.uuid4()),
                   "Repeatability-First-Sent": format_imf_fixdate(datetime.now(timezone.utc))}
        body = {"participants": {user: {"role": "Presenter"} for user in user_ids(pair, 2)}}
        pair_of_answers = all_at_once([
            lambda client=client: client.post("/rooms?api-version=2025-03-13", body, headers) for client in clients
        ])
        for response in pair_of_answers:
            assert response.status_code == 201, response.text
            assert response.headers["Repeatability-Result"] == "accepted"
        first, second = pair_of_answers
        assert first.json() == second.json()
        assert first.headers["Location"] == second.headers["Location"]
        answers.append(first.json()["id"])
    assert room_ids(services) - before == set(answers)
    assert len(set(answers)) == 5


def new_caller(pair, identity, index: int) -> "Caller":
    user, token = identity.create_user_and_token([CommunicationTokenScope.VOIP])
    return Caller(user.raw_id, token.token, pair.base_url(index), pair.ca_file)


@dataclass
class Caller:
    raw_id: str
    token: str
    base_url: str
    ca_file: str

    def post(self, path: str) -> requests.Response:
        return requests.post(self.base_url + path, headers={"Authorization": f"Bearer {self.token}"},
                             verify=self.ca_file, timeout=REQUEST_TIMEOUT)

    def join(self, room_id: str) -> requests.Response:
        return self.post(f"/roomCalls/{room_id}/join")

    def leave(self, room_id: str) -> requests.Response:
        return self.post(f"/roomCalls/{room_id}/me/leave")


def room_with_callers(pair, identity, count: int) -> tuple[str, list[Caller]]:
    """A room whose roster holds `count` users with tokens, half of them talking to each instance."""
    callers = [new_caller(pair, identity, index) for index in range(count)]
    room = pair.rooms_client(0).create_room(participants=[
        RoomParticipant(communication_identifier=CommunicationUserIdentifier(c.raw_id), role=ParticipantRole.ATTENDEE)
        for c in callers
    ])
    return room.id, callers


def event_types(events) -> Counter:
    return Counter(event.event_type for event in events)


def test_concurrent_joins_on_both_instances_start_one_call(pair, identity, services):
    room_id, callers = room_with_callers(pair, identity, CALLERS)
    answers = all_at_once([lambda caller=caller: caller.join(room_id) for caller in callers])
    assert [a.status_code for a in answers] == [200] * CALLERS, [a.text for a in answers if a.status_code != 200]
    assert len({a.json()["serverCallId"] for a in answers}) == 1
    assert len({a.json()["participantId"] for a in answers}) == CALLERS

    call = services.calls.current_call(room_id)
    assert call.state == "active" and call.connected == CALLERS
    assert sorted(p.raw_id for p in call.participants if p.connected) == sorted(c.raw_id for c in callers)
    events = services.outbox.history(room_id=room_id)
    assert event_types(events) == {CALL_STARTED: 1, PARTICIPANT_ADDED: CALLERS}
    added = [e.data["participantId"] for e in events if e.event_type == PARTICIPANT_ADDED]
    assert sorted(added) == sorted(a.json()["participantId"] for a in answers)


def test_concurrent_leaves_on_both_instances_end_the_call_once(pair, identity, services):
    room_id, callers = room_with_callers(pair, identity, CALLERS)
    all_at_once([lambda caller=caller: caller.join(room_id) for caller in callers])
    answers = all_at_once([lambda caller=caller: caller.leave(room_id) for caller in callers])
    assert [a.status_code for a in answers] == [200] * CALLERS, [a.text for a in answers if a.status_code != 200]

    call = services.calls.current_call(room_id)
    assert call.state == "ended" and call.end_reason == "lastParticipantLeft" and call.connected == 0
    assert all(p.state == "disconnected" and p.leave_reason == "hungUp" for p in call.participants)
    assert event_types(services.outbox.history(room_id=room_id)) == {
        CALL_STARTED: 1, PARTICIPANT_ADDED: CALLERS, PARTICIPANT_REMOVED: CALLERS, CALL_ENDED: 1,
    }


def test_no_event_is_lost_between_the_outbox_and_the_subscriber(pair, identity, services):
    rooms = [room_with_callers(pair, identity, 6) for _ in range(3)]
    # Every caller of every room joins at once, then leaves at once, half through each instance.
    all_at_once([lambda c=c, r=r: c.join(r) for r, callers in rooms for c in callers])
    all_at_once([lambda c=c, r=r: c.leave(r) for r, callers in rooms for c in callers])

    stored = [event for room_id, _ in rooms for event in services.outbox.history(room_id=room_id)]
    assert len({event.id for event in stored}) == len(stored), "an event id was stored twice"
    expected = {CALL_STARTED: 1, PARTICIPANT_ADDED: 6, PARTICIPANT_REMOVED: 6, CALL_ENDED: 1}
    for room_id, callers in rooms:
        in_room = [e for e in stored if e.data["room"]["id"] == room_id]
        assert event_types(in_room) == expected
        assert {e.subject.rsplit("/", 1)[1] for e in in_room if e.event_type == PARTICIPANT_ADDED} == \
            {c.raw_id for c in callers}

    by_id = {event.id: event for event in stored}
    received = pair.subscriber.wait_for(lambda events: by_id.keys() <= {e["id"] for e in events}, timeout=60)
    for event in received:
        if event["id"] in by_id:  # at least once: a repeat carries the same id, type and subject
            assert (event["eventType"], event["subject"]) == (by_id[event["id"]].event_type, by_id[event["id"]].subject)
    # The sender marks its rows delivered right after Event Grid accepted them: give it a moment.
    deadline = time.monotonic() + 30
    while any(services.outbox.pending(room_id) for room_id, _ in rooms):
        assert time.monotonic() < deadline, "an event stayed pending after it was delivered"
        time.sleep(0.2)



def clear_of_the_hosts_purge_timer(needed=timedelta(seconds=45)):
    """Wait out the hosts' own PurgeExpiredRooms run (every five minutes on the UTC clock) if it is due
    within `needed`, so it cannot purge rooms the test deleted before the test's sweeps see them."""
    now = datetime.now(timezone.utc)
    next_run = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) + timedelta(minutes=5)
    if next_run - now < needed:
        time.sleep((next_run - now).total_seconds() + 10)  # and give that run time to finish


def test_housekeeping_on_both_instances_at_once_purges_every_deleted_room(pair, services):
    """Timers fire on every instance at the same second: both purge the same rooms side by side."""
    from shared.bootstrap import build_services
    from shared.config.settings import Settings

    client = pair.rooms_client(0)
    clear_of_the_hosts_purge_timer()
    doomed = []
    for _ in range(4):
        room = client.create_room()
        # A roster larger than one transaction's worth of deletes.
        client.add_or_update_participants(room_id=room.id, participants=[
            RoomParticipant(communication_identifier=CommunicationUserIdentifier(user)) for user in user_ids(pair, 150)
        ])
        client.delete_room(room_id=room.id)
        doomed.append(room.id)
    table = services.tables.table(services.settings.table_name("Rooms"))
    for room_id in doomed:  # the room entity and its 150 roster rows wait for the sweep
        rows = list(table.query_entities("PartitionKey eq @pk", parameters={"pk": room_id}, select=["RowKey"]))
        assert len(rows) > 150, (room_id, len(rows))
    other_instance = build_services(Settings.from_env(pair.settings, served_at=pair.base_url(0)))
    try:
        grace = timedelta(0)  # the rooms were deleted just now: without a grace they are due at once
        purged = all_at_once([lambda: services.rooms.sweep(grace), lambda: other_instance.rooms.sweep(grace)])
    finally:
        other_instance.close()
    # Each doomed room is counted by at least one sweep (by both when both found it before it went);
    # rooms deleted by earlier tests may add to the sum.
    assert sum(purged) >= len(doomed), purged
    for room_id in doomed:
        assert list(table.query_entities("PartitionKey eq @pk", parameters={"pk": room_id})) == []


JOIN_RACE_TRIES = 30


def test_a_join_racing_the_users_removal_leaves_them_in_neither(pair, identity, services):
    """A join and a roster PATCH taking the same user off, sent at once to the two instances.

    However they interleave, once both have answered the user is on the roster and in the call, or
    in neither; here the removal always applies, so neither. Half the rooms already have a call
    running (the join adds to it), half have none (the join starts it).
    """
    kept_in = []
    for attempt in range(JOIN_RACE_TRIES):
        leaving = new_caller(pair, identity, attempt)
        host = new_caller(pair, identity, attempt + 1)
        room = pair.rooms_client(0).create_room(participants=[
            RoomParticipant(communication_identifier=CommunicationUserIdentifier(user.raw_id),
                            role=ParticipantRole.ATTENDEE)
            for user in (leaving, host)
        ])
        if attempt % 2:
            assert host.join(room.id).status_code == 200
        remover = pair.rooms_client(attempt + 1)
        joined, _ = all_at_once([
            lambda: leaving.join(room.id),
            lambda: remover.remove_participants(
                room_id=room.id, participants=[CommunicationUserIdentifier(leaving.raw_id)]),
        ])
        assert joined.status_code in (200, 403), joined.text
        if joined.status_code == 403:
            assert joined.json()["error"]["code"] == "NotInvited"
        assert leaving.raw_id not in roster_of(pair.rooms_client(attempt), room.id)
        call = services.calls.current_call(room.id)
        if call is not None and any(p.raw_id == leaving.raw_id and p.connected for p in call.participants):
            kept_in.append((attempt, joined.status_code))
    assert kept_in == [], f"{len(kept_in)} of {JOIN_RACE_TRIES} tries left the removed user in the call"
