"""`python -m localdev run` starts the Event Grid topic and the PSTN simulator and points the app at them."""

from __future__ import annotations

import json
import time

import requests
from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridEvent, EventGridPublisherClient

from localdev.eventgrid.subscriber import WebhookSubscriber

from .test_cli import _start_run, _stop_run


def _app_setting(announced, name):
    endpoint = announced["connection string"].split(";")[0].split("=", 1)[1]
    return requests.get(endpoint + f"api/settings/{name}", verify=announced["CA certificate"], timeout=10).text


def test_run_serves_a_topic_and_the_pstn_network_with_stable_settings(tmp_path, monkeypatch):
    state = tmp_path / "state"
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

        subscriptions = first["Event Grid subscriptions"]
        document = json.loads(open(subscriptions).read())
        with WebhookSubscriber() as hook:
            document["subscriptions"] = [{"name": "cli-test", "destination": {"endpointUrl": hook.url}}]
            open(subscriptions, "w").write(json.dumps(document))
            deadline = time.monotonic() + 20
            while not hook.validations:  # the topic notices the edit within a second
                assert time.monotonic() < deadline, "the subscription was never validated"
                time.sleep(0.1)
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
