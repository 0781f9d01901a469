"""`python -m localdev run` starts the Event Grid topic and the PSTN simulator and points the app at them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridEvent, EventGridPublisherClient

from localdev.eventgrid.subscriber import WebhookSubscriber
from tests.support.calls import CallUser

from .test_cli import REPO_ROOT, _start_run, _stop_run


def _wait_until_active(announced, name):
    """Until the topic lists subscription `name` as active: the topic drops events for a subscription
    still validating, and the webhook sees the validation request before the topic marks it active."""
    listing = announced["Event Grid topic"].removesuffix("/api/events") + "/subscriptions"
    deadline = time.monotonic() + 20
    while True:
        states = {s["name"]: s["state"] for s in requests.get(listing, verify=announced["CA certificate"], timeout=10).json()}
        if states.get(name) == "active":
            return
        assert time.monotonic() < deadline, f"subscription {name} never became active: {states}"
        time.sleep(0.1)


def _app_setting(announced, name):
    endpoint = announced["connection string"].split(";")[0].split("=", 1)[1]
    return requests.get(endpoint + f"api/settings/{name}", verify=announced["CA certificate"], timeout=10).text


def test_run_serves_a_topic_and_the_pstn_network_with_stable_settings(tmp_path, monkeypatch):
    state = tmp_path / "state"
    state.mkdir()
    (state / "pstn-rules.json").write_text(json.dumps({"busy": ["+14255550101"], "ringSeconds": {"+14255550102": 0.2}}))
    process, first = _start_run(state)
    try:
        topic, key = first["Event Grid topic"], first["Event Grid key"]
        assert topic.startswith("https://127.0.0.1:") and topic.endswith("/api/events")
        assert _app_setting(first, "ANTEROOM_EVENTGRID_ENDPOINT") == topic
        assert _app_setting(first, "ANTEROOM_EVENTGRID_KEY") == key
        gateway = first["PSTN gateway"]
        assert _app_setting(first, "ANTEROOM_PSTN_GATEWAY_URL") == gateway
        numbers = _app_setting(first, "ANTEROOM_PSTN_CALLER_NUMBERS").split(",")
        assert len(numbers) == 2 and all(n.startswith("+180055501") and len(n) == 12 for n in numbers)
        assert requests.get(gateway + "/calls", timeout=10).json() == []
        # The rules file in the state dir says what numbers do, as the app's dial-outs would find.
        for target, outcome in (("+14255550101", "busy"), ("+14255550102", "answered")):
            dialled = requests.post(gateway + "/calls", timeout=10,
                                    json={"source": numbers[0], "target": target, "reference": f"r|{target}"})
            assert dialled.json() == {"outcome": outcome}
        assert [(c["target"], c["state"]) for c in requests.get(gateway + "/calls", timeout=10).json()] == \
            [("+14255550101", "failed"), ("+14255550102", "connected")]
        assert requests.delete(gateway + "/calls/" + "r%7C%2B14255550102", timeout=10).status_code == 204
        assert requests.get(gateway + "/calls", timeout=10).json()[1]["state"] == "ended"

        subscriptions = first["Event Grid subscriptions"]
        document = json.loads(open(subscriptions).read())
        with WebhookSubscriber() as hook:
            document["subscriptions"] = [{"name": "cli-test", "destination": {"endpointUrl": hook.url}}]
            open(subscriptions, "w").write(json.dumps(document))
            _wait_until_active(first, "cli-test")  # the topic notices the edit within a second
            # The Event Grid client passes no TLS options down to its transport: requests reads this.
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", first["CA certificate"])
            client = EventGridPublisherClient(topic, AzureKeyCredential(key))
            client.send([EventGridEvent(subject="s", event_type="T", data={}, data_version="1", id="from-cli-test")])
            assert hook.wait_for_count(1)[0]["id"] == "from-cli-test"
    finally:
        _stop_run(process)

    process, second = _start_run(state)
    try:
        # The same key, numbers and (ports being free) URLs: clients configured once keep working.
        assert (second["Event Grid key"], second["Event Grid topic"], second["PSTN gateway"]) == \
            (key, topic, gateway)
        assert _app_setting(second, "ANTEROOM_PSTN_CALLER_NUMBERS").split(",") == numbers
    finally:
        _stop_run(process)


def test_run_delivers_the_apps_call_events_to_a_subscribed_webhook(tmp_path):
    """The real app under `run`: a join reaches a webhook added to the subscriptions file."""
    from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
    from azure.communication.rooms import CommunicationUserIdentifier, RoomParticipant, RoomsClient

    process, announced = _start_run(tmp_path / "state", app=())
    try:
        with WebhookSubscriber() as hook:
            path = announced["Event Grid subscriptions"]
            document = json.loads(open(path).read())
            document["subscriptions"] = [{"name": "calls", "destination": {"endpointUrl": hook.url},
                                          "eventDeliverySchema": "CloudEventSchemaV1_0"}]
            open(path, "w").write(json.dumps(document))
            connection_string, ca_file = announced["connection string"], announced["CA certificate"]
            identity = CommunicationIdentityClient.from_connection_string(connection_string, connection_verify=ca_file)
            user, token = identity.create_user_and_token([CommunicationTokenScope.VOIP])
            rooms = RoomsClient.from_connection_string(connection_string, connection_verify=ca_file)
            room = rooms.create_room(participants=[RoomParticipant(
                communication_identifier=CommunicationUserIdentifier(user.raw_id), role="Presenter")])
            _wait_until_active(announced, "calls")  # before the join
            base_url = connection_string.split(";")[0].split("=", 1)[1].rstrip("/")
            assert CallUser(user.raw_id, token.token, base_url, ca_file).join(room.id).status_code == 200
            events = hook.wait_for(lambda received: {e["type"] for e in received} >= {
                "Microsoft.Communication.CallStarted", "Microsoft.Communication.CallParticipantAdded"}, 30)
            assert {e["data"]["room"]["id"] for e in events} == {room.id}
        # What a client needs beyond the connection string is printed, and the same in instance.json.
        description = _description(tmp_path / "state")
        tokens = description["callbackTokens"]
        assert announced["callback tokens"] == \
            f"audience {tokens['audience']}, issuer {tokens['issuer']}, keys {tokens['jwksUri']}"
        assert tokens["audience"] == description["resourceId"] and tokens["jwksUri"] == base_url + "/calling/keys"
        settings = json.loads((tmp_path / "state" / "settings.json").read_text())
        assert announced["PSTN caller numbers"].split(", ") == description["callerNumbers"] == \
            settings["ANTEROOM_PSTN_CALLER_NUMBERS"].split(",")
        admin = announced["Event Grid admin"].split(" ")[0]
        assert admin == description["eventGrid"]["admin"] == announced["Event Grid topic"].removesuffix("/api/events")
        listed = requests.get(admin + "/subscriptions", verify=ca_file, timeout=10).json()
        assert [(s["name"], s["state"]) for s in listed] == [("calls", "active")]
    finally:
        _stop_run(process)


def _description(state_dir: Path) -> dict:
    """instance.json, once `run` has written it (after the readiness line)."""
    deadline = time.monotonic() + 30
    while not (state_dir / "instance.json").exists():
        assert time.monotonic() < deadline, "no instance.json"
        time.sleep(0.1)
    return json.loads((state_dir / "instance.json").read_text())


def test_eventgrid_command_serves_only_the_topic(tmp_path, monkeypatch):
    state = tmp_path / "state"
    process = subprocess.Popen([sys.executable, "-m", "localdev", "eventgrid", "--state-dir", str(state), "--port", "0"],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        announced = {}
        for line in process.stdout:
            name, _, value = line.strip().partition(": ")
            announced[name] = value
            if line.startswith("localdev: listening"):
                break
        topic, key = announced["Event Grid topic"], announced["Event Grid key"]
        assert json.loads((state / "settings.json").read_text())["ANTEROOM_EVENTGRID_ENDPOINT"] == topic
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", announced["CA certificate"])
        with WebhookSubscriber() as hook:
            subscriptions = Path(announced["Event Grid subscriptions"])
            document = json.loads(subscriptions.read_text())
            document["subscriptions"] = [{"name": "alone", "destination": {"endpointUrl": hook.url}}]
            subscriptions.write_text(json.dumps(document))
            _wait_until_active(announced, "alone")
            EventGridPublisherClient(topic, AzureKeyCredential(key)).send(
                [EventGridEvent(subject="s", event_type="T", data={}, data_version="1", id="standalone")])
            assert hook.wait_for_count(1)[0]["id"] == "standalone"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def test_run_names_the_app_by_its_own_addresses(tmp_path):
    """The app's host names for signatures: the HTTPS address (WEBSITE_HOSTNAME, as the Functions host
    sets it) and, with --http-port, the plain HTTP listener's too."""
    from localdev.azurite import free_port

    http_port = free_port()
    process, announced = _start_run(tmp_path / "state", extra=("--http-port", str(http_port)))
    try:
        https = announced["connection string"].split(";")[0].split("=", 1)[1].rstrip("/")
        assert _app_setting(announced, "WEBSITE_HOSTNAME") == https.removeprefix("https://")
        assert f"127.0.0.1:{http_port}" in _app_setting(announced, "ANTEROOM_PUBLIC_HOSTS").split(",")
    finally:
        _stop_run(process)


def test_run_refuses_a_bad_pstn_rules_file_before_starting_anything(tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"ringing": ["+14255550101"]}))
    finished = subprocess.run([sys.executable, "-m", "localdev", "run", "--port", "0", "--state-dir", str(tmp_path / "s"),
                               "--pstn-rules", str(rules)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2
    assert "PSTN rules refused" in finished.stderr and "'ringing'" in finished.stderr
    assert not (tmp_path / "s" / "azurite").exists()
