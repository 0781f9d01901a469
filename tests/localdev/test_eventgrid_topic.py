"""The local Event Grid topic on loopback: azure-eventgrid publishing, real webhooks, retries, dead letters, restarts."""

from __future__ import annotations

import base64
import datetime
import json
import logging
import secrets
import socket
import ssl
import time
import uuid

import pytest
import requests
from azure.core.credentials import AzureKeyCredential, AzureSasCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas

from localdev.certs import ensure_dev_certificate
from localdev.eventgrid import EventGridTopic, TopicThread
from localdev.eventgrid.delivery import RETRY_SCHEDULE
from localdev.eventgrid.subscriber import WebhookSubscriber
from localdev.identity import EVENTGRID_RESOURCE, STORAGE_RESOURCE, LocalTokenCredential, issue_token
from tests.conftest import TEST_CERT_DIR

TIME_SCALE = 0.002  # Event Grid's 10 s first retry becomes 20 ms


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def webhook(name, url, schema="EventGridSchema", **extra):
    return {"name": name, "destination": {"endpointType": "WebHook", "endpointUrl": url},
            "eventDeliverySchema": schema, **extra}


def grid_event(**overrides) -> EventGridEvent:
    values = dict(subject="call/abc/participant/8:acs:x", event_type="Microsoft.Communication.CallStarted",
                  data={"serverCallId": "abc"}, data_version="1.0")
    values.update(overrides)
    return EventGridEvent(**values)


class RunningTopic:
    """A topic on its own thread plus the helpers tests need."""

    def __init__(self, state_dir, key, port=0, **options):
        certificate = ensure_dev_certificate(TEST_CERT_DIR)
        options.setdefault("time_scale", TIME_SCALE)
        self.topic = EventGridTopic(state_dir, key=key, port=port, certificate=certificate,
                                    reload_interval=0.2, **options)
        self.runner = TopicThread(self.topic)

    def __enter__(self):
        self.runner.start()
        return self

    def __exit__(self, *exc_info):
        self.runner.stop()

    def subscribe(self, *entries):
        states = self.runner.call(self.topic.set_subscriptions(list(entries)))
        return states

    def publisher(self, credential=None):
        return EventGridPublisherClient(self.topic.endpoint, credential or AzureKeyCredential(self.topic.key))

    def wait_idle(self, timeout=30):
        deadline = time.monotonic() + timeout
        while self.topic.pending_count():
            assert time.monotonic() < deadline, "deliveries still pending"
            time.sleep(0.02)


@pytest.fixture
def key():
    return new_key()


@pytest.fixture
def subscriber():
    with WebhookSubscriber() as hook:
        yield hook


@pytest.fixture
def running(tmp_path, key):
    with RunningTopic(tmp_path / "topic", key) as topic:
        yield topic


def test_event_grid_schema_from_the_sdk_reaches_a_webhook_one_event_per_post(running, subscriber):
    assert running.subscribe(webhook("grid-sub", subscriber.url)) == {"grid-sub": "active"}
    assert subscriber.validations[0].headers["aeg-event-type"] == "SubscriptionValidation"
    events = [grid_event(id=str(uuid.uuid4())) for _ in range(3)]

    running.publisher().send(events)

    subscriber.wait_for_count(3)
    ids = sorted(e["id"] for e in subscriber.events())
    assert ids == sorted(e.id for e in events)
    for record in subscriber.notifications:
        assert isinstance(record.body, list) and len(record.body) == 1
        assert record.content_type.startswith("application/json")
        assert record.headers["aeg-event-type"] == "Notification"
        assert record.headers["aeg-subscription-name"] == "GRID-SUB"
        assert record.headers["aeg-delivery-count"] == "0"
        assert record.headers["aeg-data-version"] == "1.0"
        assert record.headers["aeg-metadata-version"] == "1"
        assert record.headers["aeg-output-event-id"] == record.body[0]["id"]
        received = EventGridEvent.from_json(json.dumps(record.body[0]))
        assert received.subject == "call/abc/participant/8:acs:x"
        assert received.event_type == "Microsoft.Communication.CallStarted"
        assert received.data == {"serverCallId": "abc"}
        assert received.metadata_version == "1"
        assert received.topic == running.topic.resource_id  # filled in, since the publisher gave none


def test_cloud_events_with_a_sas_token_use_the_abuse_protection_handshake(running, subscriber):
    assert running.subscribe(webhook("ce-sub", subscriber.url, "CloudEventSchemaV1_0")) == {"ce-sub": "active"}
    assert subscriber.validations[0].headers["WebHook-Request-Origin"] == "eventgrid.azure.net"
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
    token = generate_sas(running.topic.endpoint, running.topic.key, expiry)
    event = CloudEvent(source="/anteroom/test", type="Microsoft.Communication.CallEnded", data={"a": 1},
                       subject="call/x")

    running.publisher(AzureSasCredential(token)).send([event])

    subscriber.wait_for_count(1)
    record = subscriber.notifications[0]
    assert record.content_type.startswith("application/cloudevents+json")
    assert isinstance(record.body, dict)  # structured mode: the event itself, not an array
    assert record.headers["aeg-metadata-version"] == "1.0"  # the spec version, for CloudEvents
    assert record.headers["aeg-output-event-id"] == event.id
    received = CloudEvent.from_dict(record.body)
    assert (received.id, received.source, received.type, received.subject, received.data) == \
        (event.id, "/anteroom/test", "Microsoft.Communication.CallEnded", "call/x", {"a": 1})


def test_https_webhooks_with_the_dev_certificate(running):
    with WebhookSubscriber(certificate=ensure_dev_certificate(TEST_CERT_DIR)) as secure:
        assert secure.url.startswith("https://")
        assert running.subscribe(webhook("tls-sub", secure.url)) == {"tls-sub": "active"}
        running.publisher().send([grid_event(id="over-tls")])
        assert secure.wait_for_count(1)[0]["id"] == "over-tls"
        running.wait_idle()
        [listed] = requests.get(running.topic.base_url + "/subscriptions", timeout=30).json()
        assert listed == {"name": "tls-sub", "endpointType": "WebHook", "destination": secure.url,
                          "eventDeliverySchema": "EventGridSchema", "state": "active", "pendingDeliveries": 0}


def test_single_cloud_event_and_authorization_header(running, subscriber):
    running.subscribe(webhook("ce-sub", subscriber.url, "CloudEventSchemaV1_0"))
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
    token = generate_sas(running.topic.endpoint, running.topic.key, expiry)
    body = {"specversion": "1.0", "id": "one", "source": "/s", "type": "T", "data": {"x": 1}}
    answer = requests.post(running.topic.endpoint + "?api-version=2018-01-01", data=json.dumps(body),
                           headers={"Content-Type": "application/cloudevents+json; charset=utf-8",
                                    "Authorization": f"SharedAccessSignature {token}"}, timeout=30)
    assert answer.status_code == 200 and answer.content == b""
    assert subscriber.wait_for_count(1)[0]["id"] == "one"


def _post(running, body, headers, content_type="application/json"):
    return requests.post(running.topic.endpoint + "?api-version=2018-01-01", data=body,
                         headers={"Content-Type": content_type, **headers}, timeout=30)


def test_wrong_missing_expired_or_foreign_credentials_get_401(running, key):
    with pytest.raises(ClientAuthenticationError):
        running.publisher(AzureKeyCredential(new_key())).send([grid_event()])
    now = datetime.datetime.now(datetime.timezone.utc)
    tokens = {
        "expired": generate_sas(running.topic.endpoint, key, now - datetime.timedelta(seconds=1)),
        "other key": generate_sas(running.topic.endpoint, new_key(), now + datetime.timedelta(minutes=5)),
        "other resource": generate_sas("https://127.0.0.1:1/api/events", key, now + datetime.timedelta(minutes=5)),
    }
    for why, token in tokens.items():
        with pytest.raises(ClientAuthenticationError):
            running.publisher(AzureSasCredential(token)).send([grid_event()])
        answer = _post(running, "[]", {"aeg-sas-token": token})
        assert answer.status_code == 401, why
        assert answer.json()["error"]["code"] == "Unauthorized"
    tampered = tokens["expired"].replace("e=", "e=9", 1)
    assert _post(running, "[]", {"aeg-sas-token": tampered}).status_code == 401
    assert _post(running, "[]", {}).status_code == 401
    assert _post(running, "[]", {"Authorization": "Bearer abc"}).status_code == 401


def test_an_entra_token_for_event_grid_publishes(running, subscriber):
    running.subscribe(webhook("entra-sub", subscriber.url))
    running.publisher(LocalTokenCredential()).send([grid_event(id="with-a-token")])
    assert subscriber.wait_for_count(1)[0]["id"] == "with-a-token"


def test_missing_wrong_audience_expired_or_badly_signed_tokens_get_401(running, subscriber):
    running.subscribe(webhook("entra-sub", subscriber.url))
    client = str(uuid.uuid4())
    good, _ = issue_token(EVENTGRID_RESOURCE, client)
    header, payload, signature = good.split(".")
    tokens = {
        "no token": ("", "The Authorization header has no token."),
        "storage's audience": (issue_token(STORAGE_RESOURCE, client)[0],
                               "The access token's audience is not https://eventgrid.azure.net."),
        "expired": (issue_token(EVENTGRID_RESOURCE, client, now=time.time() - 7200)[0],
                    "The access token has expired."),
        "another secret": (issue_token(EVENTGRID_RESOURCE, client, secret=b"a secret of 32 bytes or more that is not localdev's")[0],
                           "The access token's signature is not valid."),
        "claims changed after signing": (f"{header}.{payload[:-2]}AA.{signature}", None),
        "another issuer": (issue_token(EVENTGRID_RESOURCE, client, issuer="https://login.example.com/")[0],
                           "The access token was not issued by this tenant."),
        "not a JWT": ("abc", "The access token is malformed."),
    }
    for why, (token, message) in tokens.items():
        answer = _post(running, '[{"id": "x", "subject": "s", "eventType": "T", "eventTime": "2026-01-01T00:00:00Z", '
                                '"data": {}, "dataVersion": "1"}]', {"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, why
        error = answer.json()["error"]
        assert error["code"] == "Unauthorized", why
        if message:
            assert error["message"] == message, why
    answer = _post(running, "[]", {})
    assert answer.json()["error"]["message"] == \
        "The request has no aeg-sas-key, aeg-sas-token, SharedAccessSignature or Bearer token."
    running.publisher().send([grid_event(id="after-the-refusals")])  # the key still works beside tokens
    assert [event["id"] for event in subscriber.wait_for_count(1)] == ["after-the-refusals"]


@pytest.mark.parametrize("body, content_type, detail", [
    ('{"id": "x"}', "application/json", "InputJsonInvalid"),
    ("not json", "application/json", "InputJsonInvalid"),
    ("[]", "application/json", "InputJsonInvalid"),
    ('[{"id": "x", "subject": "s", "eventType": "T"}]', "application/json", "MissingRequiredProperty"),
    ('[{"id": "x", "subject": "s", "eventType": "T", "eventTime": "yesterday"}]', "application/json",
     "InvalidPropertyValue"),
    ('[{"id": "x", "source": "s", "specversion": "1.0"}]', "application/cloudevents-batch+json",
     "MissingRequiredProperty"),
    ('[{"id": "x", "source": "s", "type": "T", "specversion": "0.3"}]', "application/cloudevents-batch+json",
     "InvalidPropertyValue"),
    ('{"id": "x", "source": "s", "type": "T", "specversion": "1.0"}', "application/cloudevents-batch+json",
     "InputJsonInvalid"),
    ("[]", "text/plain", "InvalidContentType"),
])
def test_malformed_batches_get_400_with_an_event_grid_error(running, key, body, content_type, detail):
    answer = _post(running, body, {"aeg-sas-key": key}, content_type)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "BadRequest" and error["details"][0]["code"] == detail and error["message"]


def test_requests_over_one_megabyte_get_400(running, key):
    event = {"id": "big", "subject": "s", "eventType": "T", "eventTime": "2025-01-01T00:00:00Z",
             "data": "x" * 1_048_576}
    answer = _post(running, json.dumps([event]), {"aeg-sas-key": key})
    assert answer.status_code == 400 and answer.json()["error"]["details"][0]["code"] == "RequestTooLarge"
    with pytest.raises(HttpResponseError):
        running.publisher().send([grid_event(data={"blob": "y" * 1_100_000})])


def test_filters_pick_event_types_and_subjects(running, subscriber):
    running.subscribe(webhook("only-started", subscriber.url, filter={
        "includedEventTypes": ["microsoft.communication.callstarted"],
        "subjectBeginsWith": "CALL/", "subjectEndsWith": "/x"}))
    running.publisher().send([
        grid_event(id="keep", subject="call/1/startedBy/x"),
        grid_event(id="wrong-type", subject="call/1/x", event_type="Microsoft.Communication.CallEnded"),
        grid_event(id="wrong-start", subject="room/1/x"),
        grid_event(id="wrong-end", subject="call/1/y"),
    ])
    running.wait_idle()
    time.sleep(0.1)
    assert [e["id"] for e in subscriber.events()] == ["keep"]


def test_failures_are_retried_on_the_scaled_schedule(running, subscriber):
    running.subscribe(webhook("flaky", subscriber.url))
    subscriber.status = 503
    running.publisher().send([grid_event(id="retried")])
    deadline = time.monotonic() + 20
    while len(running.topic.log.entries(eventId="retried", outcome="Retrying")) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    subscriber.status = 200

    received = subscriber.wait_for_count(1)
    assert received[0]["id"] == "retried"
    running.wait_idle()  # the topic logs the success after the webhook answered
    attempts = running.topic.log.entries(eventId="retried", kind="delivery")
    assert [a["outcome"] for a in attempts[:3]] == ["Retrying"] * 3 and attempts[-1]["outcome"] == "Succeeded"
    assert int(subscriber.notifications[0].headers["aeg-delivery-count"]) == len(attempts) - 1
    # Each wait follows Event Grid's schedule, scaled: 10 s, 30 s, 60 s -> 20 ms, 60 ms, 120 ms.
    times = [datetime.datetime.fromisoformat(a["time"].replace("Z", "+00:00")).timestamp() for a in attempts]
    for index, gap in enumerate(b - a for a, b in zip(times, times[1:])):
        expected = RETRY_SCHEDULE[index] * TIME_SCALE
        assert expected * 0.9 <= gap <= expected + 1.0, (index, gap)
    listed = requests.get(running.topic.base_url + "/deliveries", params={"eventId": "retried"}, timeout=30).json()
    assert [e["attempt"] for e in listed] == list(range(1, len(attempts) + 1))


def test_bad_request_dead_letters_at_once(running, subscriber):
    running.subscribe(webhook("strict", subscriber.url, deadLetter=True))
    subscriber.status = 400
    running.publisher().send([grid_event(id="refused")])
    running.wait_idle()
    [letter] = running.topic.store.dead_letters("strict")
    assert letter["id"] == "refused" and letter["deliveryAttempts"] == 1
    assert letter["deadLetterReason"] == "NonRetriableHttpStatusCode" and letter["lastHttpStatusCode"] == 400
    assert letter["eventType"] == "Microsoft.Communication.CallStarted" and letter["publishTime"]


def test_max_attempts_and_time_to_live_dead_letter(running, subscriber, tmp_path):
    running.subscribe(
        webhook("twice", subscriber.url, deadLetter=True, retryPolicy={"maxDeliveryAttempts": 2}),
        webhook("short-lived", subscriber.url, deadLetter=True, retryPolicy={"eventTimeToLiveInMinutes": 1}),
        webhook("no-dead-letter", subscriber.url, retryPolicy={"maxDeliveryAttempts": 1}),
    )
    subscriber.status = 500
    running.publisher().send([grid_event(id="doomed")])
    running.wait_idle()  # 1 minute of time to live is 120 ms at this scale
    [twice] = running.topic.store.dead_letters("twice")
    assert (twice["deadLetterReason"], twice["deliveryAttempts"], twice["lastHttpStatusCode"]) == \
        ("MaxDeliveryAttemptsExceeded", 2, 500)
    [short] = running.topic.store.dead_letters("short-lived")
    assert short["deadLetterReason"] == "TimeToLiveExceeded" and short["deliveryAttempts"] >= 1
    assert running.topic.store.dead_letters("no-dead-letter") == []
    assert running.topic.log.entries(subscription="no-dead-letter", outcome="Dropped")
    dead_letters = requests.get(running.topic.base_url + "/deadletters", timeout=30).json()
    assert {d["deadLetterReason"] for d in dead_letters} == {"MaxDeliveryAttemptsExceeded", "TimeToLiveExceeded"}


def test_attempts_that_fail_unexpectedly_count_toward_the_maximum(running, subscriber):
    running.subscribe(webhook("raising", subscriber.url, deadLetter=True, retryPolicy={"maxDeliveryAttempts": 2}))
    sends = []

    async def raising_send(subscription, delivery):
        sends.append(delivery.attempts)
        raise RuntimeError("the sender broke")

    running.topic._send = raising_send
    running.publisher().send([grid_event(id="unsendable")])
    running.wait_idle()
    assert sends == [1, 2]
    [letter] = running.topic.store.dead_letters("raising")
    assert (letter["deadLetterReason"], letter["deliveryAttempts"]) == ("MaxDeliveryAttemptsExceeded", 2)


def test_a_delivery_that_cannot_be_dead_lettered_is_not_retried(running, subscriber):
    running.subscribe(webhook("unwritable", subscriber.url, deadLetter=True))
    subscriber.status = 400
    tries = []

    def failing_dead_letter(delivery, reason):
        tries.append(reason)
        raise OSError("dead-letter folder not writable")

    running.topic.store.dead_letter = failing_dead_letter
    running.publisher().send([grid_event(id="stuck")])
    running.wait_idle()
    time.sleep(0.3)  # ten first retries at this time scale
    assert tries == ["NonRetriableHttpStatusCode"]
    assert [d.event_id for d in running.topic.store.load()] == ["stuck"]  # kept for the next start


def test_a_webhook_that_fails_the_handshake_gets_nothing(running):
    with WebhookSubscriber(validate=False) as refusing:
        states = running.subscribe(webhook("refuses", refusing.url))
        assert states["refuses"].startswith("failed")
        running.publisher().send([grid_event()])
        time.sleep(0.2)
        assert refusing.notifications == [] and running.topic.pending_count() == 0


def test_a_failed_handshake_is_retried_for_a_while_then_until_the_file_changes(tmp_path, key):
    with WebhookSubscriber(validate=False) as refusing, \
            RunningTopic(tmp_path / "topic", key, revalidate_interval=0.1, revalidate_for=1.5) as running:
        running.subscribe(webhook("refuses", refusing.url))
        time.sleep(2)
        retried = len(refusing.validations)
        assert retried >= 3
        time.sleep(1)
        assert len(refusing.validations) == retried
        running.subscribe(webhook("refuses", refusing.url))  # the file written again
        assert len(refusing.validations) > retried


def test_manual_validation_through_the_validation_url(running):
    with WebhookSubscriber(validate="manual") as manual:
        states = running.subscribe(webhook("by-url", manual.url))
        assert states["by-url"] == "awaiting a GET of the validationUrl"
        url = manual.validations[0].events[0]["data"]["validationUrl"]
        assert url.startswith(running.topic.base_url + "/validate?")
        assert requests.get(url, timeout=30).status_code == 200
        assert running.topic.is_active("by-url")
        assert requests.get(url, timeout=30).status_code == 404  # a code works once
        running.publisher().send([grid_event(id="after-manual")])
        assert manual.wait_for_count(1)[0]["id"] == "after-manual"


def test_accepted_events_survive_a_topic_restart(tmp_path, key):
    state = tmp_path / "topic"
    subscriber = WebhookSubscriber()
    subscriber.start()
    with RunningTopic(state, key) as first:
        first.subscribe(webhook("durable", subscriber.url))
        port = first.topic.port
        subscriber.stop()  # down: deliveries wait on disk
        first.publisher().send([grid_event(id=f"kept-{i}") for i in range(5)])
        assert first.topic.pending_count() == 5
    subscriber.start()
    with RunningTopic(state, key, port=port) as second:
        assert second.topic.is_active("durable")  # validated once, remembered
        received = subscriber.wait_for_count(5)
        assert sorted(e["id"] for e in received) == [f"kept-{i}" for i in range(5)]
        second.wait_idle()
        assert list((state / "pending").glob("*.json")) == []
    subscriber.stop()


def test_subscriptions_file_is_created_and_re_read_when_it_changes(tmp_path, key, subscriber):
    with RunningTopic(tmp_path / "topic", key) as running:
        path = running.topic.subscriptions_file
        document = json.loads(path.read_text())
        assert document["subscriptions"] == [] and "$example" in document
        document["subscriptions"] = [webhook("edited", subscriber.url)]
        path.write_text(json.dumps(document))
        deadline = time.monotonic() + 10
        while not running.topic.is_active("edited"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        running.publisher().send([grid_event(id="after-edit")])
        assert subscriber.wait_for_count(1)[0]["id"] == "after-edit"


def test_a_malformed_request_with_a_key_in_it_does_not_reach_the_log(tmp_path, key, caplog):
    server_log = logging.getLogger("aiohttp.server")
    for installed in list(server_log.filters):  # as in a process where no host ever started
        server_log.removeFilter(installed)
    leaked = "aeg-sas-key" + secrets.token_hex(16)
    with RunningTopic(tmp_path / "topic", key) as running, caplog.at_level(logging.DEBUG, "aiohttp"):
        context = ssl.create_default_context(cafile=str(TEST_CERT_DIR / "localdev-ca.pem"))
        with socket.create_connection(("127.0.0.1", running.topic.port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            # A header line without a colon: aiohttp refuses it and would log the line verbatim.
            tls.sendall(f"POST /api/events HTTP/1.1\r\nHost: x\r\n{leaked}\r\n\r\n".encode())
            assert tls.recv(1024).split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    assert caplog.records and leaked not in caplog.text


def test_each_subscription_gets_its_events_in_publish_order(running):
    """However long the subscriber takes per event; two subscriptions each keep their own order."""
    import random

    with WebhookSubscriber() as first, WebhookSubscriber() as second:
        for hook in (first, second):
            hook.handling_seconds = lambda: random.uniform(0, 0.005)
        running.subscribe(webhook("first", first.url), webhook("second", second.url, "CloudEventSchemaV1_0"))
        ids = [f"ordered-{index:03d}" for index in range(60)]
        publisher = running.publisher()
        for start in range(0, len(ids), 6):  # several publishes of several events each
            publisher.send([grid_event(id=event_id) for event_id in ids[start:start + 6]])
        for hook in (first, second):
            assert [e["id"] for e in hook.wait_for_count(len(ids))] == ids


def test_a_failing_event_does_not_hold_back_the_ones_after_it(tmp_path, key, subscriber):
    """Retries skip the line: the events published after a failed one arrive before its retry."""
    with RunningTopic(tmp_path / "topic", key, time_scale=0.1) as slow_retries:  # the first retry after 1 s
        slow_retries.subscribe(webhook("hook", subscriber.url))
        subscriber.status = 503
        slow_retries.publisher().send([grid_event(id="refused-first")])
        deadline = time.monotonic() + 20
        while not slow_retries.topic.log.entries(eventId="refused-first", outcome="Retrying"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        subscriber.status = 200
        slow_retries.publisher().send([grid_event(id="later-1"), grid_event(id="later-2")])
        assert [e["id"] for e in subscriber.wait_for_count(3)] == ["later-1", "later-2", "refused-first"]
