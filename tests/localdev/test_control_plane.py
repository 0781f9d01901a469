"""The control plane of `localdev run` (HTTP and CLI): secret and loopback guard, reset, seeds, token
minting, the instance description; against a real instance in memory."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from aiohttp.test_utils import make_mocked_request

from localdev.control.seed import SeedError, check_seed, value_lines

from .instance_support import REPO_ROOT, console_action, running_instance, state

RESOURCE = "11111111-1111-1111-1111-111111111111"


def _user_id(resource: str, n: int) -> str:
    return f"8:acs:{resource}_{n:08d}-0000-4000-8000-000000000000"


def _seed(resource: str = RESOURCE, role: str = "Presenter", until: str | None = None) -> dict:
    room = {"id": "99000000000000042", "pstnDialOutEnabled": True,
            "participants": {_user_id(resource, 1): {"role": role}, _user_id(resource, 2): {"role": "Attendee"}}}
    if until:
        room["validUntil"] = until
    return {"anteroomSeed": 1, "resourceId": resource,
            "identities": [{"id": _user_id(resource, 1)}, {"id": _user_id(resource, 2)}], "rooms": [room]}


@pytest.fixture(scope="module")
def instance():
    with running_instance() as (anteroom, _process):
        yield anteroom


@pytest.fixture
def clean(instance):
    instance.reset()
    return instance


def _cli(*args: str, state_dir: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localdev", *args[:1], "--state-dir", state_dir, *args[1:]],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


# -- the description -------------------------------------------------------------------------------
def test_the_instance_describes_itself_in_a_private_file_and_on_the_command_line(instance):
    description = instance.description
    path = os.path.join(description["stateDir"], "instance.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for key in ("endpoint", "connectionString", "caFile", "callerNumbers", "consoleUrl", "controlUrl", "secret"):
        assert description[key], key
    assert description["eventGrid"]["topic"].endswith("/api/events") and description["eventGrid"]["key"]
    assert description["pstn"]["gateway"].startswith("http://127.0.0.1:")
    assert description["callbackTokens"] == {
        "audience": description["resourceId"], "issuer": "https://acscallautomation.communication.azure.com",
        "jwksUri": description["endpoint"] + "calling/keys",
        "openIdConfiguration": description["endpoint"] + "calling/.well-known/acsopenidconfiguration"}
    printed = _cli("describe", state_dir=description["stateDir"])
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == json.loads(open(path).read())
    field = _cli("describe", "--field", "eventGrid.topic", state_dir=description["stateDir"])
    assert field.stdout.strip() == description["eventGrid"]["topic"]
    assert requests.get(description["caFile"] and description["endpoint"] + "openapi.json",
                        verify=description["caFile"], timeout=30).status_code == 200


def test_describe_says_when_nothing_runs(tmp_path):
    result = _cli("describe", state_dir=str(tmp_path))
    assert result.returncode == 3 and "no instance is running" in result.stderr


# -- the guard -------------------------------------------------------------------------------------
def test_a_missing_or_wrong_secret_gets_401_and_changes_nothing(clean):
    room = clean.rooms.create_room()
    base = clean.control_url.removesuffix("/control")
    for headers in ({}, {"X-Anteroom-Secret": "wrong"}, {"Authorization": "Bearer wrong"}):
        reset = requests.post(clean.control_url + "/reset", json={}, headers=headers, timeout=30)
        assert reset.status_code == 401
        assert reset.json()["error"]["code"] == "Unauthorized"
        assert requests.get(base + "/", headers=headers, timeout=30).status_code == 401
        assert requests.get(base + "/events", headers=headers, timeout=30).status_code == 401
    assert console_action(clean, "deleteRoom", {"roomId": room.id}, secret="wrong").status_code == 401
    assert requests.post(clean.control_url + "/reset?secret=nope", json={}, timeout=30).status_code == 401
    assert [r.id for r in clean.rooms.list_rooms()] == [room.id]
    # The URL printed carries the secret; the page it serves sets the cookie its own files use.
    page = requests.get(clean.console_url, timeout=30)
    assert page.status_code == 200 and "Anteroom console" in page.text
    assert requests.get(base + "/static/console.js", cookies=page.cookies, timeout=30).status_code == 200
    assert requests.get(base + "/static/console.js", timeout=30).status_code == 401


async def test_a_caller_off_the_loopback_gets_403_before_the_secret_is_even_read():
    from localdev.console.server import ConsoleServer

    class Plane:
        change_listeners: list = []
        reset_listeners: list = []

    server = ConsoleServer(Plane(), api=None, topic=None, pstn=None, describe=dict, secret="s3cret")
    touched = []

    async def handler(request):
        touched.append(request)

    for remote in ("10.1.2.3", "192.168.0.7", "2001:db8::1"):
        request = make_mocked_request("POST", "/control/reset?secret=s3cret", headers={"X-Anteroom-Secret": "s3cret"},
                                      transport=_Transport(remote))
        response = await server._guard(request, handler)
        assert response.status == 403 and json.loads(response.body)["error"]["code"] == "Forbidden"
    assert touched == []
    allowed = make_mocked_request("POST", "/control/reset", headers={"X-Anteroom-Secret": "s3cret"},
                                  transport=_Transport("127.0.0.1"))
    await server._guard(allowed, handler)
    assert len(touched) == 1


class _Transport:
    def __init__(self, host: str) -> None:
        self.host = host

    def get_extra_info(self, name: str, default=None):
        return (self.host, 50000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


# -- reset -----------------------------------------------------------------------------------------
def test_reset_one_room_ends_its_call_and_removes_it_and_no_other(clean):
    alice = clean.user()
    doomed, kept = clean.create_room({alice: "Presenter"}), clean.create_room({alice: "Presenter"})
    assert alice.join(doomed.id).status_code == 200
    answer = clean.reset(doomed.id)
    assert answer == {"reset": "room", "roomId": doomed.id}
    assert [r.id for r in clean.rooms.list_rooms()] == [kept.id]
    assert alice.call(doomed.id).status_code == 404
    assert not any(room["id"] == doomed.id for room in state(clean)["rooms"])
    again = requests.post(clean.control_url + "/reset", json={"roomId": doomed.id},
                          headers={"X-Anteroom-Secret": clean.description["secret"]}, timeout=30)
    assert again.status_code == 404 and again.json()["error"]["code"] == "NotFound"  # the API's own answer


def test_reset_all_empties_storage_the_topic_and_the_phones(clean):
    hook = clean.webhook()
    alice = clean.user()
    room = clean.create_room({alice: "Presenter"})
    alice.join(room.id)
    hook.wait_for("CallStarted")
    answer = clean.reset()
    assert answer["reset"] == "all" and answer["entitiesDeleted"] > 0
    after = state(clean)
    assert after["rooms"] == [] and after["identities"] == [] and after["callbacks"] == []
    assert after["eventgrid"]["subscriptions"] == [] and after["eventgrid"]["deliveries"] == []
    assert after["phones"]["calls"] == []
    assert list(clean.rooms.list_rooms()) == []


# -- tokens ----------------------------------------------------------------------------------------
def test_a_minted_token_with_a_short_lifetime_works_expires_and_can_be_revoked(clean):
    alice = clean.user()
    room = clean.create_room({alice: "Presenter"})
    minted = clean.mint_token(alice.raw_id, 3)
    expires = datetime.fromisoformat(minted["expiresOn"].replace("Z", "+00:00"))
    assert timedelta(seconds=1) < expires - datetime.now(timezone.utc) <= timedelta(seconds=4)
    short = type(alice)(clean, alice.identifier, minted["token"])
    assert short.join(room.id).status_code == 200
    time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 0.5)
    assert short.call(room.id).status_code == 401
    long = type(alice)(clean, alice.identifier, clean.mint_token(alice.raw_id, 600)["token"])
    assert long.call(room.id).status_code == 200
    time.sleep(0.01)
    clean.identity.revoke_tokens(alice.identifier)
    assert long.call(room.id).status_code == 401


def test_token_minting_refuses_as_the_api_does(clean):
    headers = {"X-Anteroom-Secret": clean.description["secret"]}
    alice = clean.user()
    cases = [({"userId": alice.raw_id, "seconds": 0}, 400, "BadRequest"),
             ({"userId": alice.raw_id, "seconds": 30, "scopes": ["admin"]}, 400, "BadRequest"),
             ({"userId": alice.raw_id.replace("_", "_f"), "seconds": 30}, 404, "NotFound"),
             ({"seconds": 30}, 400, "BadRequest")]
    for body, status, code in cases:
        answer = requests.post(clean.control_url + "/tokens", json=body, headers=headers, timeout=30)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), body
    cli = _cli("control", "token", "--user", alice.raw_id, "--seconds", "45", state_dir=clean.description["stateDir"])
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["userId"] == alice.raw_id


# -- seeds -----------------------------------------------------------------------------------------
def test_export_then_import_restores_identities_rooms_rosters_and_subscriptions(clean):
    hook = clean.webhook(event_types=["CallStarted"])
    alice, bob = clean.user(), clean.user()
    room = clean.create_room({alice: "Presenter", bob: "Consumer"}, pstn_dial_out_enabled=True)
    exported = clean.export_seed()
    assert [r["id"] for r in exported["rooms"]] == [room.id]
    assert exported["rooms"][0]["participants"] == {alice.raw_id: {"role": "Presenter"}, bob.raw_id: {"role": "Consumer"}}
    assert {i["id"] for i in exported["identities"]} == {alice.raw_id, bob.raw_id}
    assert [s["name"] for s in exported["subscriptions"]] == [hook.name]
    clean.reset()
    answer = clean.import_seed(exported)
    assert answer["imported"] == {"identities": 2, "rooms": 1, "subscriptions": 1}
    assert answer["movedIds"] == {}
    restored = clean.rooms.get_room(room.id)
    assert restored.pstn_dial_out_enabled is True and restored.valid_until == room.valid_until
    roles = {p.communication_identifier.raw_id: str(p.role) for p in clean.rooms.list_participants(room.id)}
    assert roles == {alice.raw_id: "Presenter", bob.raw_id: "Consumer"}
    # The users exist again: the same ids get tokens from the Identity API and join.
    assert alice.join(room.id).status_code == 200
    hook.wait_for("CallStarted")
    assert clean.import_seed(exported)["kept"] == {"identities": 2, "rooms": 1, "subscriptions": 1}


def test_a_seed_reusing_a_deleted_rooms_id_makes_a_new_room_without_its_old_call(clean):
    alice = clean.user()
    room = clean.create_room({alice: "Presenter"})
    exported = clean.export_seed()
    old_call = alice.join(room.id).json()["serverCallId"]
    clean.rooms.delete_room(room.id)
    assert alice.call(room.id).json()["endReason"] == "roomDeleted"  # kept for reading until the sweep
    assert clean.import_seed(exported)["imported"]["rooms"] == 1  # the deleted room does not count as there
    assert alice.call(room.id).status_code == 404  # the new room has had no call: the old one went with the old room
    assert alice.join(room.id).json()["serverCallId"] != old_call


def test_a_seed_of_another_resource_moves_its_users_here(clean):
    answer = clean.import_seed(_seed())
    here = clean.description["resourceId"]
    assert answer["movedIds"] == {_user_id(RESOURCE, n): _user_id(here, n) for n in (1, 2)}
    roles = {p.communication_identifier.raw_id: str(p.role) for p in clean.rooms.list_participants("99000000000000042")}
    assert roles == {_user_id(here, 1): "Presenter", _user_id(here, 2): "Attendee"}
    token = clean.mint_token(_user_id(here, 1), 120)
    assert token["userId"] == _user_id(here, 1)


def _line_of(text: str, marker: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if marker in line)


@pytest.mark.parametrize("text, marker, before, reason", [
    ('{\n  "rooms": [\n    {"id": "99000000000000042",,}\n  ]\n}', ",,", 0, "not valid JSON"),
    (json.dumps(_seed(role="Admin"), indent=2), '"Admin"', 0, "Invalid participant role."),
    (json.dumps(_seed(until=(datetime.now(timezone.utc) + timedelta(days=181)).isoformat()), indent=2),
     '"validUntil"', 0, "larger than 180 days"),
    (json.dumps({**_seed(), "identities": [{"id": "8:acs:not-ours"}]}, indent=2), "not-ours", 0, "an identity is"),
    (json.dumps({**_seed(), "subscriptions": [{"name": "x"}]}, indent=2), '"name": "x"', 1,
     "subscription name 'x'"),
])
def test_a_bad_seed_is_refused_whole_with_the_line_and_reason(clean, text, marker, before, reason):
    line = _line_of(text, marker) - before
    before_state = state(clean)
    response = requests.post(clean.control_url + "/import", data=text.encode(),
                             headers={"X-Anteroom-Secret": clean.description["secret"]}, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidSeed" and error["line"] == line, error
    assert reason in error["message"] and f"line {line}" in error["message"]
    after = state(clean)
    assert (after["rooms"], after["identities"]) == (before_state["rooms"], before_state["identities"]) == ([], [])


def test_a_refused_rule_carries_the_apis_error_body():
    text = json.dumps(_seed(role="Admin"), indent=2)
    with pytest.raises(SeedError) as refused:
        check_seed(text, "seed.json", resource_id=RESOURCE, max_participants=1000)
    body = refused.value.to_body()["error"]
    assert body["path"] == f'rooms[0].participants["{_user_id(RESOURCE, 1)}"].role'
    assert body["acsError"]["error"]["details"][0] == {
        "code": "BadArgument", "target": f"$.participants.{_user_id(RESOURCE, 1)}.role",
        "message": "Invalid participant role. The valid roles are: Presenter, Attendee, Consumer, Collaborator."}


def test_value_lines_knows_where_each_value_is():
    text = '{"a": [1,\n {"b": "x\\ny"},\n  true],\n"c": {}}'
    lines = value_lines(text)
    assert lines[("a",)] == 1 and lines[("a", 1, "b")] == 2 and lines[("a", 2)] == 3 and lines[("c",)] == 4


def test_the_cli_imports_and_exports_seeds_and_names_the_line_of_a_refusal(clean, tmp_path):
    state_dir = clean.description["stateDir"]
    good, bad = tmp_path / "seed.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_seed(resource=clean.description["resourceId"]), indent=2))
    bad.write_text(json.dumps(_seed(role="Owner"), indent=2))
    line = _line_of(bad.read_text(), '"Owner"')
    refused = _cli("control", "import", str(bad), state_dir=state_dir)
    assert refused.returncode == 1 and f"bad.json line {line}" in refused.stderr and "Invalid participant role" in refused.stderr
    assert state(clean)["rooms"] == []
    imported = _cli("control", "import", str(good), state_dir=state_dir)
    assert imported.returncode == 0, imported.stderr
    out = tmp_path / "out.json"
    assert _cli("control", "export", "--out", str(out), state_dir=state_dir).returncode == 0
    assert [r["id"] for r in json.loads(out.read_text())["rooms"]] == ["99000000000000042"]
    assert _cli("control", "reset", "--room", "99000000000000042", state_dir=state_dir).returncode == 0
    assert state(clean)["rooms"] == []


def test_run_with_a_seed_starts_seeded_and_refuses_a_bad_seed_before_starting(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_seed(), indent=2))
    with running_instance(seed=str(good)) as (seeded, _process):
        assert seeded.description["seeded"]["imported"] == {"identities": 2, "rooms": 1, "subscriptions": 0}
        assert [r.id for r in seeded.rooms.list_rooms()] == ["99000000000000042"]

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_seed(role="Owner"), indent=2))
    refused = subprocess.run([sys.executable, "-m", "localdev", "run", "--in-memory", "--port", "0",
                              "--state-dir", str(tmp_path / "state"), "--seed", str(bad)],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    line = _line_of(bad.read_text(), "Owner")
    assert f"seed refused: {bad} line {line}" in refused.stderr and "Invalid participant role" in refused.stderr
    assert not (tmp_path / "state" / "azurite").exists() and "listening" not in refused.stdout


# -- the console's feed and actions, without a browser ---------------------------------------------
def test_the_live_feed_sends_every_section_then_changes(clean):
    base = clean.control_url.removesuffix("/control")
    with requests.get(f"{base}/events", params={"secret": clean.description["secret"]}, stream=True,
                      timeout=30) as feed:
        assert feed.headers["Content-Type"].startswith("text/event-stream")
        lines = feed.iter_lines(decode_unicode=True)
        names = set()
        while len(names) < 8:
            line = next(lines)
            if line.startswith("event: "):
                names.add(line.removeprefix("event: "))
        assert names == {"instance", "rooms", "identities", "eventgrid", "deadLetters", "callbacks", "requests",
                         "phones"}
        room = console_action(clean, "createRoom", {}).json()["body"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = next(lines)
            if line.startswith("data: ") and room["id"] in line and '"roster"' in line:
                break
        else:
            pytest.fail("the new room never reached the feed")


def test_replay_through_the_console_reaches_a_webhook_and_refusals_come_back_verbatim(clean):
    from localdev.eventgrid.subscriber import WebhookSubscriber

    alice = clean.user()
    room = clean.create_room({alice: "Presenter"})
    alice.join(room.id)
    alice.leave(room.id)
    with WebhookSubscriber() as target:
        answer = console_action(clean, "replay", {"roomId": room.id, "endpoint": target.url})
        assert answer.status_code == 200, answer.text
        assert answer.json()["body"]["replayed"] >= 2
        types = {e["eventType"] for e in target.wait_for_count(2)}
        assert {"Microsoft.Communication.CallStarted", "Microsoft.Communication.CallEnded"} <= types
    refused = console_action(clean, "replay", {"roomId": room.id})
    assert refused.status_code == 400
    assert refused.json() == {"status": 400, "body": {"error": {"code": "BadRequest", "message": "endpoint is required.",
                                                                "target": "endpoint"}}}
    unknown = console_action(clean, "join", {"roomId": room.id, "userId": alice.raw_id.replace("_", "_0")})
    assert unknown.status_code == 404 and unknown.json()["body"]["error"]["code"] == "NotFound"
    bad_subscription = console_action(clean, "addSubscription", {"subscription": {"name": "x"}})
    assert bad_subscription.status_code == 400
    assert bad_subscription.json()["error"]["code"] == "InvalidSubscription"


def test_the_console_follows_deliveries_retrying_and_dead_lettered_with_payload_and_answer(clean):
    from localdev.eventgrid.subscriber import WebhookSubscriber

    busy, refusing = WebhookSubscriber(), WebhookSubscriber()
    busy.status, refusing.status = 503, 400
    with busy, refusing:
        headers = {"X-Anteroom-Secret": clean.description["secret"]}
        for name, hook in (("busy", busy), ("refusing", refusing)):
            added = requests.post(clean.control_url + "/subscriptions", headers=headers, timeout=30, json={
                "name": name, "destination": {"endpointUrl": hook.url}, "deadLetter": True,
                "filter": {"includedEventTypes": ["Microsoft.Communication.CallStarted"]}})
            assert added.json() == {"name": name, "state": "active"}, added.text
        alice = clean.user()
        room = clean.create_room({alice: "Presenter"})
        alice.join(room.id)
        deadline = time.monotonic() + 30
        while True:
            deliveries = {d["subscription"]: d for d in state(clean)["eventgrid"]["deliveries"]}
            if deliveries.get("busy", {}).get("state") == "retrying" and \
                    deliveries.get("refusing", {}).get("state") == "deadLettered":
                break
            assert time.monotonic() < deadline, deliveries
            time.sleep(0.2)
        retrying, dead = deliveries["busy"], deliveries["refusing"]
        assert retrying["lastStatusCode"] == 503 and retrying["attempts"] == 1
        assert datetime.fromisoformat(retrying["nextAttemptAt"].replace("Z", "+00:00")) > datetime.now(timezone.utc)
        assert dead["lastStatusCode"] == 400 and dead["reason"] == "NonRetriableHttpStatusCode"
        for delivery in (retrying, dead):
            assert delivery["eventType"] == "Microsoft.Communication.CallStarted"
            assert delivery["payload"]["data"]["room"]["id"] == room.id
            assert delivery["lastAnswer"] is not None  # what the subscriber answered, as text
        letters = state(clean)["deadLetters"]
        assert [(l["deadLetterReason"], l["data"]["room"]["id"]) for l in letters] == [("NonRetriableHttpStatusCode", room.id)]
