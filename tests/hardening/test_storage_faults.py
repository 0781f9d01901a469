"""Storage outage mid-run: quick 503s with Retry-After in ACS's shape, never a 500 or a half-written room, recovery by itself."""
import threading
import time
import uuid

import pytest
import requests
from azure.communication.identity import CommunicationIdentityClient

from tests.support.hmac_client import HmacClient
from tests.support.refusals import active_rooms

from .conftest import hardening_stack

pytestmark = pytest.mark.stack
ROOMS = "api-version=2025-03-13"
IDENTITY = "api-version=2023-10-01"
ROSTER_SIZE = 150  # over one Table transaction (100), so writes take several round trips
WORKLOAD_MEMBER = "8:acs:w"  # the workload's rooms hold 8:acs:w<tag>_<index>, one tag a room
FAST_ANSWER_SECONDS = 8  # the SDK's own defaults would keep a request for minutes


@pytest.fixture(scope="module")
def outage(tmp_path_factory):
    # Azurite keeps its data in a folder so it survives being stopped and started again.
    with hardening_stack(azurite_location=tmp_path_factory.mktemp("azurite-outage")) as stack:
        yield stack


def roster(role, count=ROSTER_SIZE, tag="o"):
    return {"participants": {f"8:acs:{tag}_{index:04d}": {"role": role} for index in range(count)}}


def assert_unavailable(answer):
    assert answer.status_code == 503, (answer.status_code, answer.text)
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.headers["x-ms-error-code"] == "ServiceUnavailable"
    error = answer.json()["error"]
    assert error["code"] == "ServiceUnavailable" and error["message"]


def all_participants(client, room_id):
    found, path = [], f"/rooms/{room_id}/participants?{ROOMS}"
    while path:
        page = client.send("GET", path)
        assert page.status_code == 200, page.text
        found += page.json()["value"]
        link = page.json().get("nextLink")
        path = link[len(client.base):] if link else None
    return found


class Workload:
    """Two threads creating big rooms and flipping a big roster, recording every answer, until stopped.

    A request that gets no answer at all (a timeout, a dropped connection) is recorded in `failures`
    and the thread goes on, rather than ending it unseen.
    """

    def __init__(self, client, room_id):
        self.client, self.room_id = client, room_id
        self.answers: list = []
        self.created: list[str] = []
        self.failures: list[tuple[str, str, requests.RequestException]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._create_rooms), threading.Thread(target=self._flip_roster)]

    def _send(self, method, path, body):
        try:
            answer = self.client.send(method, path, body)
        except requests.RequestException as error:
            self.failures.append((method, path, error))
            return
        self.answers.append(answer)
        if answer.status_code == 201:
            self.created.append(answer.json()["id"])

    def _create_rooms(self):
        while not self._stop.is_set():
            self._send("POST", f"/rooms?{ROOMS}", roster("Attendee", tag=f"w{uuid.uuid4().hex[:8]}"))

    def _flip_roster(self):
        roles = ["Consumer", "Attendee"]
        while not self._stop.is_set():
            roles.reverse()
            self._send("PATCH", f"/rooms/{self.room_id}/participants?{ROOMS}", roster(roles[0]))

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)


def test_outage_gives_fast_503s_and_the_service_recovers_by_itself(outage):
    client = HmacClient(outage)
    identity = CommunicationIdentityClient.from_connection_string(outage.connection_string)
    user, token = identity.create_user_and_token(["voip"])
    flipped = client.send("POST", f"/rooms?{ROOMS}", roster("Attendee")).json()["id"]
    assert client.send("PATCH", f"/rooms/{flipped}/participants?{ROOMS}", {"participants": {user.raw_id: {"role": "Presenter"}}}).status_code == 200

    with Workload(client, flipped) as workload:
        time.sleep(1.5)
        outage.stop_storage()
        time.sleep(1.5)
        probes = [
            ("POST", f"/rooms?{ROOMS}", roster("Presenter", 3), {}),
            ("GET", f"/rooms?{ROOMS}", None, {}),
            ("GET", f"/rooms/{flipped}?{ROOMS}", None, {}),
            ("PATCH", f"/rooms/{flipped}?{ROOMS}", {"pstnDialOutEnabled": True}, {}),
            ("GET", f"/rooms/{flipped}/participants?{ROOMS}", None, {}),
            ("DELETE", f"/rooms/{flipped}?{ROOMS}", None, {}),
            ("POST", f"/identities?{IDENTITY}", {}, {}),
            ("POST", f"/identities/{user.raw_id}/:issueAccessToken?{IDENTITY}", {"scopes": ["voip"]}, {}),
            # A valid token cannot be checked against revocation while storage is down: 503, not 401.
            ("POST", f"/roomCalls/{flipped}/join", None, {"sign": False, "headers": {"Authorization": f"Bearer {token.token}"}}),
        ]
        for method, path, body, extra in probes:
            started = time.monotonic()
            answer = client.send(method, path, body, **extra)
            assert time.monotonic() - started < FAST_ANSWER_SECONDS, (method, path)
            assert_unavailable(answer)
        outage.restart_storage()
        deadline = time.monotonic() + 60
        while client.send("GET", f"/rooms/{flipped}?{ROOMS}").status_code != 200:
            assert time.monotonic() < deadline, "the service did not recover after storage came back"
            time.sleep(0.5)
        time.sleep(1.5)  # the workload runs on against recovered storage

    assert not workload.running, "a workload thread did not stop"
    assert not workload.failures, workload.failures  # every request got an answer, in time
    statuses = [answer.status_code for answer in workload.answers]
    assert set(statuses) <= {200, 201, 503}, statuses  # never a 500
    assert 503 in statuses and statuses[-1] in (200, 201)
    for answer in workload.answers:
        if answer.status_code == 503:
            assert_unavailable(answer)

    # Nothing half-written: every created room has its whole roster, and the flipped roster has one role.
    for room_id in workload.created:
        assert len(all_participants(client, room_id)) == ROSTER_SIZE
    # Nor by the creates that answered 503: they write the roster in chunks and the room entity
    # last, so one cut short leaves roster rows no room points at (unreachable, never listed) or a
    # whole room. Every listed room holding the workload's members holds all of one create's.
    with outage.services() as services:
        rosters = {room.id: services.rooms.roster_of(services.rooms.get(room.id)) for room in active_rooms(services)}
    holding = {}
    for room_id, members in rosters.items():
        workload_members = [raw_id for raw_id in members if raw_id.startswith(WORKLOAD_MEMBER)]
        if workload_members:
            holding[room_id] = workload_members
            assert len(workload_members) == ROSTER_SIZE, (room_id, len(workload_members))
            assert len({raw_id.rpartition("_")[0] for raw_id in workload_members}) == 1, room_id  # one create's
    assert set(workload.created) <= holding.keys()
    flipped_roles = {p["role"] for p in all_participants(client, flipped) if p["rawId"].startswith("8:acs:o_")}
    assert len(flipped_roles) == 1, flipped_roles
    # And the room deleted during the outage is still there, because that delete failed.
    assert client.send("GET", f"/rooms/{flipped}?{ROOMS}").json()["pstnDialOutEnabled"] is False


def test_rooms_written_before_the_outage_survive_it(outage):
    client = HmacClient(outage)
    room = client.send("POST", f"/rooms?{ROOMS}", roster("Collaborator", 5, tag="s")).json()
    outage.stop_storage()
    assert_unavailable(client.send("GET", f"/rooms/{room['id']}?{ROOMS}"))
    outage.restart_storage()
    deadline = time.monotonic() + 60
    while (answer := client.send("GET", f"/rooms/{room['id']}?{ROOMS}")).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert answer.json() == room
    assert {p["role"] for p in all_participants(client, room["id"])} == {"Collaborator"}
