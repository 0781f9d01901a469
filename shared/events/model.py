"""Outgoing events: the event as stored in an outbox, ACS's call event types, Event Grid's envelope and webhook request."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

# The call events ACS publishes to Event Grid (produced by shared/calls/events.py).
CALL_STARTED = "Microsoft.Communication.CallStarted"
CALL_ENDED = "Microsoft.Communication.CallEnded"
PARTICIPANT_ADDED = "Microsoft.Communication.CallParticipantAdded"
PARTICIPANT_REMOVED = "Microsoft.Communication.CallParticipantRemoved"
CALL_EVENT_TYPES = (CALL_STARTED, CALL_ENDED, PARTICIPANT_ADDED, PARTICIPANT_REMOVED)
EVENT_GRID_SCHEMA = "EventGridSchema"
CLOUD_EVENTS_SCHEMA = "CloudEventSchemaV1_0"
DELIVERY_SCHEMAS = (EVENT_GRID_SCHEMA, CLOUD_EVENTS_SCHEMA)


@dataclass(frozen=True)
class OutgoingEvent:
    """One event waiting in a room's outbox. Its id never changes, however often it is sent."""

    id: str
    event_type: str
    subject: str
    data: dict
    event_time: datetime


def envelope(event: OutgoingEvent, schema: str, resource: str) -> dict:
    """The event as Event Grid hands it to a webhook: Event Grid schema, or CloudEvents 1.0."""
    time = event.event_time.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    if schema == CLOUD_EVENTS_SCHEMA:
        return {
            "specversion": "1.0", "id": event.id, "source": resource, "type": event.event_type,
            "subject": event.subject, "time": time, "datacontenttype": "application/json", "data": event.data,
        }
    return {
        "id": event.id, "topic": resource.lower(), "subject": event.subject, "eventType": event.event_type,
        "eventTime": time, "data": event.data, "dataVersion": "1.0", "metadataVersion": "1",
    }


def webhook_request(event: dict, schema: str) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one event POSTed to a webhook as Event Grid delivers it, one event per request.

    Event Grid schema: a one-element array, `application/json`. CloudEvents: structured content
    mode, the event itself, `application/cloudevents+json`; the metadata version header carries the
    spec version there and a data version does not apply. Who delivers adds the headers of the
    delivery itself (`aeg-subscription-name`, `aeg-delivery-count`).
    """
    if schema == CLOUD_EVENTS_SCHEMA:
        body, content_type = json.dumps(event), "application/cloudevents+json; charset=utf-8"
        data_version, metadata_version = "", str(event.get("specversion") or "1.0")
    else:
        body, content_type = json.dumps([event]), "application/json; charset=utf-8"
        data_version, metadata_version = str(event.get("dataVersion") or ""), "1"
    headers = {"Content-Type": content_type, "aeg-event-type": "Notification",
               "aeg-output-event-id": str(event.get("id", "")),
               "aeg-data-version": data_version, "aeg-metadata-version": metadata_version}
    return body.encode(), headers
