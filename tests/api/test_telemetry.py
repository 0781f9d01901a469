"""Telemetry with APPLICATIONINSIGHTS_CONNECTION_STRING: each request a server span named by its
operation, its storage and Event Grid calls as child spans, the operation log's CorrelationId on it,
and no secret in any span. Recorded with InMemorySpanExporter in a host serving the app on Azurite."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from functions.pipeline import CORRELATION_ID_ATTRIBUTE
from localdev.azurite import ACCOUNT_KEY, AzuriteTable, free_port
from localdev.certs import ensure_dev_certificate
from shared.auth.hmac import sign_headers
from shared.core.timefmt import format_imf_fixdate
from tests.conftest import ROOT, TEST_CERT_DIR
from tests.support.entra import KEYED_SETTINGS, new_app_secrets
from tests.support.events import TopicSubscriptions, start_topic

pytestmark = pytest.mark.usefixtures("starts_processes")

ROOMS_API = "2024-04-15"
IDENTITY_API = "2023-10-01"
SERVER, INTERNAL, CLIENT = "SpanKind.SERVER", "SpanKind.INTERNAL", "SpanKind.CLIENT"


class TracedHost:
    def __init__(self, env: dict[str, str], log_path) -> None:
        inherited = {name: value for name, value in os.environ.items() if not name.startswith(KEYED_SETTINGS)}
        # Its log (the exporters retrying the closed port, among others) goes to a file, read on failure.
        self.log_path = log_path
        with open(log_path, "w") as log_file:
            self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.telemetry_host", str(TEST_CERT_DIR)], cwd=ROOT,
                env={**inherited, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, text=True)
        line = self.process.stdout.readline()
        assert line.startswith("listening "), line + log_path.read_text()
        self.base_url = line.split()[1]

    def spans(self) -> list[dict]:
        self.process.stdin.write("spans\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def traced(tmp_path_factory, starts_processes):
    certificate = ensure_dev_certificate(TEST_CERT_DIR)
    with AzuriteTable(certificate=certificate) as azurite:
        topic = start_topic(tmp_path_factory.mktemp("eventgrid"), certificate)
        events = TopicSubscriptions(topic)
        # Nothing leaves the machine: ingestion and live metrics go to a closed local port, the
        # SDK's own statistics and remote configuration are off, and so are the Azure VM and App
        # Service resource detectors (the VM one asks the instance metadata address).
        dead = f"http://127.0.0.1:{free_port()}/"
        env = {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint={dead};"
                                                     f"LiveEndpoint={dead}",
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
            "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
            # Every trace kept (the default keeps about 5 a second, at random): the test looks for given ones.
            "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
            "OTEL_TRACES_SAMPLER_ARG": "1.0",
            "ANTEROOM_STORAGE_CONNECTION_STRING": azurite.connection_string,
            **new_app_secrets(),
            "ANTEROOM_EVENTGRID_ENDPOINT": topic.topic.endpoint,
            "ANTEROOM_EVENTGRID_KEY": topic.topic.key,
        }
        host = TracedHost(env, tmp_path_factory.mktemp("telemetry") / "host.log")
        try:
            yield host, env, azurite, events
        finally:
            host.stop()
            events.close()
            topic.stop()


def _signed(host: TracedHost, env: dict, method: str, path: str, body: dict | None, sent: list[str]):
    url = host.base_url + path
    data = json.dumps(body).encode() if body is not None else b""
    headers = sign_headers(base64.b64decode(env["ANTEROOM_ACCESS_KEY"]), method, url, data,
                           format_imf_fixdate(datetime.now(timezone.utc)))
    sent.append(headers["Authorization"])
    return requests.request(method, url, data=data, headers={**headers, "Content-Type": "application/json"},
                            timeout=30)


def _descendants(spans: list[dict], root: dict) -> list[dict]:
    children = [s for s in spans if s["parent_id"] == root["context"]["span_id"]]
    return children + [d for child in children for d in _descendants(spans, child)]


def _is_event_grid_send(name: str) -> bool:
    # azure-eventgrid's generated client names it EventGridPublisherClientOperationsMixin.send.
    return name.startswith("EventGridPublisherClient") and name.endswith(".send")


def _wait_for_spans(host: TracedHost, found, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        spans = host.spans()
        result = found(spans)
        if result:
            return spans, result
        assert time.monotonic() < deadline, json.dumps([s["name"] for s in spans])
        time.sleep(0.2)


def test_a_request_is_a_server_span_with_its_storage_calls_and_events_under_it(traced):
    host, env, azurite, events = traced
    sent: list[str] = []
    identity = _signed(host, env, "POST", f"/identities?api-version={IDENTITY_API}",
                       {"createTokenWithScopes": ["voip"]}, sent)
    assert identity.status_code == 201, identity.text
    user, token = identity.json()["identity"]["id"], identity.json()["accessToken"]["token"]
    created = _signed(host, env, "POST", f"/rooms?api-version={ROOMS_API}",
                      {"participants": {user: {"role": "Presenter"}}}, sent)
    assert created.status_code == 201, created.text
    room_id, correlation_id = created.json()["id"], created.headers["MS-CV"]
    with events.subscribed() as subscriber:
        joined = requests.post(f"{host.base_url}/roomCalls/{room_id}/join",
                               headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert joined.status_code == 200, joined.text
        subscriber.wait_for_count(2)

    def requests_traced(spans):
        servers = {s["name"]: s for s in spans if s["kind"] == SERVER}
        join = servers.get("JoinRoomCall")
        if join is None or not any(_is_event_grid_send(d["name"]) for d in _descendants(spans, join)):
            return None
        return servers

    spans, servers = _wait_for_spans(host, requests_traced)
    assert {"CreateIdentity", "CreateRoom", "JoinRoomCall"} <= set(servers)

    create = servers["CreateRoom"]
    assert create["parent_id"] is None  # the caller sent no traceparent
    assert create["attributes"][CORRELATION_ID_ATTRIBUTE] == correlation_id
    assert create["attributes"]["http.response.status_code"] == 201
    storage = [d for d in _descendants(spans, create) if d["name"].startswith("TableClient.")]
    assert storage, "the room's storage calls are child spans of CreateRoom"
    assert all(s["context"]["trace_id"] == create["context"]["trace_id"] for s in storage)

    join = servers["JoinRoomCall"]
    below_join = {d["name"] for d in _descendants(spans, join)}
    assert "TableClient.submit_transaction" in below_join  # the call change's transaction
    assert any(map(_is_event_grid_send, below_join))  # published after the answer, still in its trace

    # The operation log's record of CreateRoom carries the span's correlation id.
    log = TableClient.from_connection_string(azurite.connection_string, "anteroomRoomsOperations")
    deadline = time.monotonic() + 30
    while True:
        try:  # written in the background; the table itself comes with the first record
            records = list(log.query_entities(f"CorrelationId eq '{correlation_id}'"))
        except ResourceNotFoundError:
            records = []
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(r["OperationName"], r["RoomId"]) for r in records] == [("CreateRoom", room_id)]

    secrets_sent = [ACCOUNT_KEY, azurite.connection_string, env["ANTEROOM_ACCESS_KEY"],
                    env["ANTEROOM_TOKEN_SIGNING_KEY"], env["ANTEROOM_EVENTGRID_KEY"], token, *sent,
                    *(authorization.rsplit("Signature=", 1)[1] for authorization in sent)]
    shapes = ["Signature=", "HMAC-SHA256", "SharedKey", "Bearer ", "aeg-sas-key", "AccountKey", "eyJ",
              "authorization", "sig="]
    texts = []
    for span in spans:
        texts += [span["name"], json.dumps(span["attributes"]), json.dumps(span["events"]),
                  json.dumps(span["links"]), json.dumps(span["resource"]), json.dumps(span["status"])]
    leaks = [(text[:200], secret[:12]) for text in texts for secret in secrets_sent if secret in text]
    leaks += [(text[:200], shape) for text in texts for shape in shapes if shape.lower() in text.lower()]
    assert leaks == []
