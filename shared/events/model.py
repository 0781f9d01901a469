"""Outgoing events: the event as stored in an outbox, ACS's call event types, and Event Grid's envelope."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The call events ACS publishes to Event Grid (produced by shared/calls/events.py).
CALL_STARTED = "Microsoft.Communication.CallStarted"
CALL_ENDED = "Microsoft.Communication.CallEnded"
PARTICIPANT_ADDED = "Microsoft.Communication.CallParticipantAdded"
PARTICIPANT_REMOVED = "Microsoft.Communication.CallParticipantRemoved"
CALL_EVENT_TYPES = (CALL_STARTED, CALL_ENDED, PARTICIPANT_ADDED, PARTICIPANT_REMOVED)


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
    if schema == "CloudEventSchemaV1_0":
        return {
            "specversion": "1.0", "id": event.id, "source": resource, "type": event.event_type,
            "subject": event.subject, "time": time, "datacontenttype": "application/json", "data": event.data,
        }
    return {
        "id": event.id, "topic": resource.lower(), "subject": event.subject, "eventType": event.event_type,
        "eventTime": time, "data": event.data, "dataVersion": "1.0", "metadataVersion": "1",
    }
