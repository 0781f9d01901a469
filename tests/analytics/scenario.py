"""The hand-made call scenario of the analytics tests, written out in each call-event and roster format.

Room R1 (roster u1 Presenter, u2 Attendee, u3 Attendee, u4 Consumer, u5 Collaborator) holds call C1
09:30-10:30: u1 the whole call; u2 leaves 20 min early; u3 joins 15 min late; u5 drops at 09:50 and
rejoins at 09:51 until 10:29; u4 never comes; a PSTN guest is on 09:40-10:00 (call summary only, as
ACS publishes no calling events for PSTN). Room R2 (u6 Presenter, u7 Attendee) holds C2 10:05-10:20
with u6 only.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

RESOURCE = "/subscriptions/1111/resourceGroups/rg/providers/Microsoft.Communication/communicationServices/acs"
DAY = "2026-11-02T"
ROSTERS = {"R1": [("u1", "Presenter"), ("u2", "Attendee"), ("u3", "Attendee"), ("u4", "Consumer"),
                  ("u5", "Collaborator")],
           "R2": [("u6", "Presenter"), ("u7", "Attendee")]}
# call id, room, server call id, start, end
CALLS = [("C1", "R1", "c2VydmVyMQ", "09:30:00", "10:30:00"), ("C2", "R2", "c2VydmVyMg", "10:05:00", "10:20:00")]
# call id, participant id, user, role, join, leave, endpoint
CONNECTIONS = [
    ("C1", "p1", "u1", "Presenter", "09:30:00", "10:30:00", "VoIP"),
    ("C1", "p2", "u2", "Attendee", "09:31:00", "10:10:00", "VoIP"),
    ("C1", "p3", "u5", "Collaborator", "09:32:00", "09:50:00", "VoIP"),
    ("C1", "p4", "u3", "Attendee", "09:45:00", "10:30:00", "VoIP"),
    ("C1", "p5", "u5", "Collaborator", "09:51:00", "10:29:00", "VoIP"),
    ("C1", "p6", "+14255550100", None, "09:40:00", "10:00:00", "PSTN"),
    ("C2", "p7", "u6", "Presenter", "10:05:00", "10:20:00", "VoIP"),
]


def raw_id(user: str) -> str:
    return user if user.startswith("+") else f"8:acs:00000000-0000-0000-0000-000000000001_{user}"


def _identifier(user: str, role: str | None) -> dict:
    return {"communicationIdentifier": {"kind": "communicationUser", "rawId": raw_id(user),
                                        "communicationUser": {"id": raw_id(user)}}, "role": role}


def call_events() -> list[tuple[str, str, str, dict]]:
    """(event type, time, subject, data) of every calling event, VoIP participants only."""
    events = []
    for call_id, room, server, start, end in CALLS:
        people = [c for c in CONNECTIONS if c[0] == call_id and c[6] == "VoIP"]
        starter = _identifier(people[0][2], people[0][3])
        common = {"serverCallId": server, "group": {"id": "00000000-0000-0000-0000-000000000000"},
                  "room": {"id": room}, "isTwoParty": False, "correlationId": call_id, "isRoomsCall": True,
                  "startedBy": starter}
        events.append(("CallStarted", start, f"call/{server}/startedBy/{raw_id(people[0][2])}", common))
        for _, participant, user, role, join, leave, _ in people:
            data = {**common, "user": _identifier(user, role), "participantId": participant, "displayName": user}
            subject = f"call/{server}/participant/{raw_id(user)}"
            events.append(("CallParticipantAdded", join, subject, data))
            events.append(("CallParticipantRemoved", leave, subject, data))
        seconds = {"C1": 3600, "C2": 900}[call_id]
        events.append(("CallEnded", end, f"call/{server}",
                       {**common, "callDurationInSeconds": seconds, "durationOfCall": seconds,
                        "reason": {"code": 0, "subCode": 0, "phrase": "CallEnded"}}))
    return events


def write_eventgrid_array(path: Path) -> Path:
    """Event Grid schema, one pretty-printed JSON array (as a webhook delivery batch)."""
    body = [{"id": f"evt-{n}", "topic": RESOURCE.lower(), "subject": subject, "data": data,
             "eventType": f"Microsoft.Communication.{kind}", "dataVersion": "1.0", "metadataVersion": "1",
             "eventTime": f"{DAY}{time}.0000000Z"} for n, (kind, time, subject, data) in enumerate(call_events())]
    body.append(body[3])  # Event Grid delivers at least once: a duplicate must not count twice
    body.append({"id": "validation", "topic": RESOURCE, "subject": "", "eventType":
                 "Microsoft.EventGrid.SubscriptionValidationEvent", "data": {"validationCode": "x"},
                 "eventTime": f"{DAY}09:00:00Z", "dataVersion": "1", "metadataVersion": "1"})
    path.write_text(json.dumps(body, indent=2))
    return path


def write_cloudevents_lines(path: Path) -> Path:
    """CloudEvents 1.0, JSON lines."""
    lines = [json.dumps({"source": RESOURCE, "subject": subject, "type": f"Microsoft.Communication.{kind}",
                         "time": f"{DAY}{time}Z", "id": f"ce-{n}", "data": data, "specversion": "1.0"})
             for n, (kind, time, subject, data) in enumerate(call_events())]
    path.write_text("\n".join(lines) + "\n")
    return path


def _seconds(start: str, end: str) -> int:
    def to_seconds(text: str) -> int:
        hours, minutes, seconds = (int(part) for part in text.split(":"))
        return hours * 3600 + minutes * 60 + seconds
    return to_seconds(end) - to_seconds(start)


def write_callsummary_raw(path: Path) -> Path:
    """ACSCallSummary diagnostic records, with the samples' text numbers and literal "null"s."""
    calls = {c[0]: c for c in CALLS}
    lines = []
    for call_id, participant, user, _, join, leave, endpoint in CONNECTIONS:
        _, _, _, start, end = calls[call_id]
        lines.append(json.dumps({
            "time": f"{DAY}{end}Z", "resourceId": RESOURCE.upper().strip("/"), "correlationId": call_id,
            "operationName": "CallSummary", "operationVersion": "1.0", "category": "CallSummary",
            "properties": {"identifier": "null" if endpoint == "PSTN" else raw_id(user),
                           "callStartTime": f"{DAY}{start}Z", "callDuration": _seconds(start, end),
                           "callType": "Group", "teamsThreadId": "null", "participantId": participant,
                           "participantStartTime": f"{DAY}{join}Z",
                           "participantDuration": str(_seconds(join, leave)), "participantEndReason": "0",
                           "endpointId": f"e-{participant}", "endpointType": endpoint}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_callsummary_csv(path: Path) -> Path:
    """ACSCallSummary as a Log Analytics CSV export."""
    calls = {c[0]: c for c in CALLS}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["TimeGenerated", "CorrelationId", "Identifier", "CallStartTime", "CallDuration", "CallType",
                         "ParticipantId", "ParticipantStartTime", "ParticipantDuration", "ParticipantEndReason",
                         "EndpointId", "EndpointType"])
        for call_id, participant, user, _, join, leave, endpoint in CONNECTIONS:
            _, _, _, start, end = calls[call_id]
            writer.writerow([f"{DAY}{end}Z", call_id, "" if endpoint == "PSTN" else raw_id(user), f"{DAY}{start}Z",
                             _seconds(start, end), "Group", participant, f"{DAY}{join}Z", _seconds(join, leave), "0",
                             f"e-{participant}", endpoint])
    return path


def write_roster_pages(path: Path) -> Path:
    """Rooms API participant list pages, one per line, each with the room's id."""
    path.write_text("\n".join(json.dumps({"roomId": room, "value": [{"rawId": raw_id(u), "role": r} for u, r in people],
                                          "nextLink": None}) for room, people in ROSTERS.items()) + "\n")
    return path


def write_roster_csv(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["RoomId", "RawId", "Role"])
        for room, people in ROSTERS.items():
            writer.writerows([room, raw_id(user), role] for user, role in people)
    return path
