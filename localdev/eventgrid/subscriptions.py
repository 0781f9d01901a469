"""Event subscriptions of the local topic: read from a JSON file, matched against events by filter."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import write_atomically
from .publishing import CLOUD_EVENTS_SCHEMA, EVENT_GRID_SCHEMA, SCHEMAS, PublishedEvent

WEBHOOK = "WebHook"
FUNCTION = "AzureFunction"
DEFAULT_MAX_DELIVERY_ATTEMPTS = 30
DEFAULT_TTL_MINUTES = 1440
_NAME = re.compile(r"[A-Za-z0-9-]{3,64}")

_EXAMPLE = {
    "name": "my-webhook",
    "destination": {"endpointType": WEBHOOK, "endpointUrl": "https://127.0.0.1:8443/events"},
    "eventDeliverySchema": EVENT_GRID_SCHEMA,
    "filter": {"includedEventTypes": ["Microsoft.Communication.CallStarted"],
               "subjectBeginsWith": "call/", "subjectEndsWith": ""},
    "retryPolicy": {"maxDeliveryAttempts": DEFAULT_MAX_DELIVERY_ATTEMPTS,
                    "eventTimeToLiveInMinutes": DEFAULT_TTL_MINUTES},
    "deadLetter": True,
}
_EMPTY_FILE = {
    "$comment": (
        "Event subscriptions of the local Event Grid topic; edit 'subscriptions' (re-read on change). "
        "destination: {endpointType: WebHook, endpointUrl} or {endpointType: AzureFunction, functionName} "
        "(an Event Grid-triggered function of the app served by `localdev run`). A webhook becomes "
        "active after the validation handshake. '$example' shows every field; it is ignored."
    ),
    "$example": _EXAMPLE,
    "subscriptions": [],
}


class SubscriptionError(ValueError):
    """The subscriptions file is not valid; the message names the entry and the problem."""


@dataclass(frozen=True)
class Subscription:
    name: str
    endpoint_type: str
    endpoint: str  # the webhook URL, or the function's name
    delivery_schema: str = EVENT_GRID_SCHEMA
    included_event_types: tuple[str, ...] | None = None
    subject_begins_with: str = ""
    subject_ends_with: str = ""
    subject_case_sensitive: bool = False
    max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS
    ttl_minutes: int = DEFAULT_TTL_MINUTES
    dead_letter: bool = False

    @property
    def is_webhook(self) -> bool:
        return self.endpoint_type == WEBHOOK

    def matches(self, event: PublishedEvent) -> bool:
        if self.included_event_types is not None and \
                event.event_type.lower() not in {t.lower() for t in self.included_event_types}:
            return False
        subject, begins, ends = event.subject, self.subject_begins_with, self.subject_ends_with
        if not self.subject_case_sensitive:
            subject, begins, ends = subject.lower(), begins.lower(), ends.lower()
        return subject.startswith(begins) and subject.endswith(ends)


def _int_in(policy: dict, key: str, default: int, low: int, high: int, name: str) -> int:
    value = policy.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SubscriptionError(f"subscription {name}: retryPolicy.{key} must be an integer {low}..{high}")
    return value


def parse_subscription(entry: Any) -> Subscription:
    if not isinstance(entry, dict):
        raise SubscriptionError("each subscription must be a JSON object")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SubscriptionError(f"subscription name {name!r} must be 3-64 letters, digits or hyphens")
    destination = entry.get("destination")
    if not isinstance(destination, dict):
        raise SubscriptionError(f"subscription {name}: destination must be an object")
    endpoint_type = destination.get("endpointType", WEBHOOK)
    if endpoint_type == WEBHOOK:
        endpoint = destination.get("endpointUrl")
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise SubscriptionError(f"subscription {name}: destination.endpointUrl must be an http(s) URL")
    elif endpoint_type == FUNCTION:
        endpoint = destination.get("functionName")
        if not isinstance(endpoint, str) or not endpoint:
            raise SubscriptionError(f"subscription {name}: destination.functionName is required")
    else:
        raise SubscriptionError(f"subscription {name}: endpointType must be {WEBHOOK} or {FUNCTION}")
    schema = entry.get("eventDeliverySchema", EVENT_GRID_SCHEMA)
    if schema not in SCHEMAS:
        raise SubscriptionError(f"subscription {name}: eventDeliverySchema must be one of {SCHEMAS}")
    filters = entry.get("filter") or {}
    types = filters.get("includedEventTypes")
    if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
        raise SubscriptionError(f"subscription {name}: filter.includedEventTypes must be a list of strings")
    for key in ("subjectBeginsWith", "subjectEndsWith"):
        if not isinstance(filters.get(key, ""), str):
            raise SubscriptionError(f"subscription {name}: filter.{key} must be a string")
    policy = entry.get("retryPolicy") or {}
    return Subscription(
        name=name, endpoint_type=endpoint_type, endpoint=endpoint, delivery_schema=schema,
        included_event_types=tuple(types) if types is not None else None,
        subject_begins_with=filters.get("subjectBeginsWith", ""),
        subject_ends_with=filters.get("subjectEndsWith", ""),
        subject_case_sensitive=bool(filters.get("isSubjectCaseSensitive", False)),
        max_delivery_attempts=_int_in(policy, "maxDeliveryAttempts", DEFAULT_MAX_DELIVERY_ATTEMPTS, 1, 30, name),
        ttl_minutes=_int_in(policy, "eventTimeToLiveInMinutes", DEFAULT_TTL_MINUTES, 1, 1440, name),
        dead_letter=bool(entry.get("deadLetter", False)),
    )


def ensure_subscriptions_file(path: Path) -> None:
    """Create the file with an empty list and a worked example when it does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, (json.dumps(_EMPTY_FILE, indent=2) + "\n").encode(), 0o644)


def load_subscriptions(path: Path) -> dict[str, Subscription]:
    """Name -> subscription; raises SubscriptionError for an invalid file (the caller keeps the old set)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise SubscriptionError(f"{path} is not valid JSON: {error}") from None
    entries = document.get("subscriptions", []) if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise SubscriptionError(f"{path}: 'subscriptions' must be a list")
    parsed: dict[str, Subscription] = {}
    for entry in entries:
        subscription = parse_subscription(entry)
        if subscription.name.lower() in {n.lower() for n in parsed}:
            raise SubscriptionError(f"{path}: subscription {subscription.name} appears twice")
        parsed[subscription.name] = subscription
    return parsed


def write_subscriptions(path: Path, entries: list[dict[str, Any]]) -> None:
    """Replace the file's list (keeping the comment and example), e.g. from tests."""
    write_atomically(path, (json.dumps({**_EMPTY_FILE, "subscriptions": entries}, indent=2) + "\n").encode(), 0o644)


def convert(event: PublishedEvent, delivery_schema: str, topic_resource: str) -> dict[str, Any]:
    """The event in the subscription's schema, as Event Grid hands it to the destination."""
    body = dict(event.body)
    if event.schema == delivery_schema:
        if delivery_schema == EVENT_GRID_SCHEMA:
            body.setdefault("topic", topic_resource)
            body.setdefault("dataVersion", "")
            body["metadataVersion"] = "1"
        return body
    if delivery_schema == CLOUD_EVENTS_SCHEMA:
        converted = {"specversion": "1.0", "id": body["id"], "source": body.get("topic") or topic_resource,
                     "type": body["eventType"], "subject": body["subject"], "time": body["eventTime"]}
        if "data" in body:
            converted["data"] = body["data"]
        return converted
    return cloud_event_to_event_grid(body)


def cloud_event_to_event_grid(body: dict[str, Any]) -> dict[str, Any]:
    """A CloudEvent (its `source` is required) in the Event Grid schema: for Event Grid
    subscriptions, and for EventGridEvent-bound functions whose subscription delivers CloudEvents."""
    return {"id": body["id"], "topic": body["source"], "subject": body.get("subject", ""),
            "eventType": body["type"], "eventTime": body.get("time"), "data": body.get("data"),
            "dataVersion": "", "metadataVersion": "1"}
