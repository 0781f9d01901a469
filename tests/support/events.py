"""Call events in integration tests: a local Event Grid topic for a stack, and recording webhooks subscribed to it."""
from __future__ import annotations

import base64
import contextlib
import itertools
import secrets
import time
from pathlib import Path

from localdev.certs import DevCertificate
from localdev.eventgrid import EventGridTopic, TopicThread
from localdev.eventgrid.subscriber import WebhookSubscriber

from .answers import ANSWERS

CALL_EVENT_TYPES = [
    "Microsoft.Communication.CallStarted", "Microsoft.Communication.CallEnded",
    "Microsoft.Communication.CallParticipantAdded", "Microsoft.Communication.CallParticipantRemoved",
]
_names = itertools.count(1)


def start_topic(state_dir: Path, certificate: DevCertificate, *, port: int = 0,
                time_scale: float = 0.01) -> TopicThread:
    """A topic on its own thread over HTTPS (the app publishes with the dev CA trusted)."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    runner = TopicThread(EventGridTopic(state_dir, key=key, port=port, certificate=certificate,
                                        time_scale=time_scale, reload_interval=0.2))
    runner.start()
    return runner


class TopicSubscriptions:
    """Adds recording webhooks to a topic's subscriptions; each test takes its own and drops it after."""

    def __init__(self, runner: TopicThread) -> None:
        self.runner = runner
        self.entries: dict[str, dict] = {}
        self.subscribers: dict[str, WebhookSubscriber] = {}

    @property
    def topic(self) -> EventGridTopic:
        return self.runner.topic

    def _apply(self) -> dict[str, str]:
        return self.runner.call(self.topic.set_subscriptions(list(self.entries.values())))

    def subscribe(self, schema: str = "EventGridSchema", **filters) -> WebhookSubscriber:
        """A new webhook, validated and active, receiving call events in `schema`."""
        subscriber = WebhookSubscriber().start()
        ANSWERS.tooling(subscriber.url, "test webhooks (the topic delivering)")
        name = f"test-hook-{next(_names)}-{secrets.token_hex(3)}"
        self.entries[name] = {
            "name": name, "destination": {"endpointType": "WebHook", "endpointUrl": subscriber.url},
            "eventDeliverySchema": schema,
            "filter": {"includedEventTypes": CALL_EVENT_TYPES, **filters},
            "retryPolicy": {"maxDeliveryAttempts": 30}, "deadLetter": True,
        }
        self.subscribers[name] = subscriber
        states = self._apply()
        assert states[name] == "active", states
        subscriber.subscription_name = name  # type: ignore[attr-defined]
        return subscriber

    @contextlib.contextmanager
    def subscribed(self, schema: str = "EventGridSchema", **filters):
        """`subscribe` for the length of a with-block."""
        subscriber = self.subscribe(schema, **filters)
        try:
            yield subscriber
        finally:
            self.unsubscribe(subscriber)

    def unsubscribe(self, subscriber: WebhookSubscriber) -> None:
        name = next(n for n, s in self.subscribers.items() if s is subscriber)
        del self.entries[name], self.subscribers[name]
        self._apply()
        subscriber.stop()

    def close(self) -> None:
        for subscriber in self.subscribers.values():
            subscriber.stop()
        self.subscribers.clear()
        self.entries.clear()


def events_of_room(subscriber: WebhookSubscriber, room_id: str) -> list[dict]:
    return [e for e in subscriber.events() if (e.get("data") or {}).get("room", {}).get("id") == room_id]


def wait_for_room_events(subscriber: WebhookSubscriber, room_id: str, count: int, timeout: float = 60.0) -> list[dict]:
    """The room's events once `count` distinct ids arrived (duplicates, same id, are possible)."""
    subscriber.wait_for(lambda events: len({e["id"] for e in events
                                            if (e.get("data") or {}).get("room", {}).get("id") == room_id}) >= count,
                        timeout)
    time.sleep(0.2)  # let a straggler that should not exist show up before the caller counts
    return events_of_room(subscriber, room_id)
