"""Event Grid-triggered functions of a hosted app receive real func.EventGridEvent values from the local topic."""

from __future__ import annotations

import asyncio
import base64
import datetime
import secrets

import azure.functions as func
import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent
from azure.eventgrid.aio import EventGridPublisherClient

from localdev.eventgrid import EventGridTopic
from localdev.eventgrid_trigger import EventGridTriggerAdapter
from localdev.host import FunctionHost


def create_app(received: list, failures: dict) -> func.FunctionApp:
    app = func.FunctionApp()

    @app.function_name("OnCallEvent")
    @app.event_grid_trigger(arg_name="event")
    def on_call_event(event: func.EventGridEvent) -> None:
        if failures.get(event.id, 0) > 0:
            failures[event.id] -= 1
            raise RuntimeError("not yet")
        received.append(event)

    @app.event_grid_trigger(arg_name="event")
    async def on_async_event(event: func.EventGridEvent) -> None:
        received.append(("async", event.id))

    return app


@pytest.mark.asyncio(loop_scope="session")
async def test_topic_invokes_event_grid_triggered_functions_in_process(tmp_path):
    received: list = []
    failures = {"flaky": 2}
    host = FunctionHost(create_app(received, failures))
    adapter = host.adapters[EventGridTriggerAdapter.binding_type]
    assert isinstance(adapter, EventGridTriggerAdapter)
    assert set(adapter.functions) == {"OnCallEvent", "on_async_event"}
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    topic = EventGridTopic(tmp_path, key=key, time_scale=0.001, function_invoker=adapter.deliver)
    await host.start(https_port=None, http_port=0)
    await topic.start()
    try:
        states = await topic.set_subscriptions([
            {"name": "to-function", "destination": {"endpointType": "AzureFunction", "functionName": "OnCallEvent"}},
            {"name": "cloud-to-function", "eventDeliverySchema": "CloudEventSchemaV1_0",
             "destination": {"endpointType": "AzureFunction", "functionName": "on_async_event"}},
        ])
        assert states == {"to-function": "active", "cloud-to-function": "active"}
        sent = EventGridEvent(subject="call/1", event_type="Microsoft.Communication.CallStarted",
                              data={"serverCallId": "1"}, data_version="1.0", id="plain")
        async with EventGridPublisherClient(topic.endpoint, AzureKeyCredential(key)) as publisher:
            await publisher.send([sent, EventGridEvent(subject="call/2", event_type="T", data={}, data_version="1.0",
                                                       id="flaky")])
            await publisher.send([CloudEvent(source="/s", type="T", data={"x": 1}, id="cloud")])
        for _ in range(500):
            if topic.pending_count() == 0:
                break
            await asyncio.sleep(0.01)
        plain = next(e for e in received if isinstance(e, func.EventGridEvent) and e.id == "plain")
        assert (plain.subject, plain.event_type, plain.data_version, plain.get_json()) == \
            ("call/1", "Microsoft.Communication.CallStarted", "1.0", {"serverCallId": "1"})
        assert plain.topic == topic.resource_id
        assert plain.event_time is not None and \
            abs(plain.event_time - datetime.datetime.now(datetime.timezone.utc)) < datetime.timedelta(minutes=1)
        # A failing function is retried like a failing webhook (the Functions host answers 500).
        assert any(isinstance(e, func.EventGridEvent) and e.id == "flaky" for e in received)
        flaky_attempts = topic.log.entries(eventId="flaky", subscription="to-function")
        assert [a["outcome"] for a in flaky_attempts] == ["Retrying", "Retrying", "Succeeded"]
        assert ("async", "cloud") in received and ("async", "plain") in received
    finally:
        await topic.stop()
        await host.stop()
