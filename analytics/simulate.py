"""Seeded simulator of Rooms operation logs, room-call events, call summaries and rosters in every input format."""
from __future__ import annotations

import base64
import csv
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from .app_logs import DIAGNOSTIC_CATEGORY, RoomsOperationRecord, diagnostic_blob_path, format_log_time

SIMULATION_FORMATS = ("diagnostic", "eventhub", "la-csv", "la-json", "eventgrid", "cloudevents", "callsummary",
                      "roster")
DEFAULT_RESOURCE_ID = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/anteroom-sim/providers/"
                       "Microsoft.Communication/communicationServices/anteroom-sim")
DEFAULT_START = datetime(2026, 11, 1, tzinfo=timezone.utc)

# api-version mix; Collaborator and PSTN dial-out need the newer versions.
VERSIONS = (("2025-03-13", 0.45), ("2024-04-15", 0.35), ("2023-06-14", 0.15), ("2023-10-30-preview", 0.05))
LIFESPANS_MINUTES = ((60, 0.15), (120, 0.2), (24 * 60, 0.25), (7 * 24 * 60, 0.2), (30 * 24 * 60, 0.1),
                     (180 * 24 * 60, 0.1))
FAILURE_RATE = 0.06
# Realistic status mixes of failed requests per operation.
FAILURES = {
    "CreateRoom": ((400, 0.55), (401, 0.15), (403, 0.05), (429, 0.1), (500, 0.1), (503, 0.05)),
    "GetRoom": ((404, 0.5), (401, 0.2), (400, 0.1), (429, 0.1), (500, 0.07), (503, 0.03)),
    "UpdateRoom": ((400, 0.5), (404, 0.2), (401, 0.1), (409, 0.05), (500, 0.1), (503, 0.05)),
    "DeleteRoom": ((404, 0.6), (401, 0.2), (500, 0.15), (503, 0.05)),
    "ListRooms": ((401, 0.4), (429, 0.3), (500, 0.2), (503, 0.1)),
    "GetParticipants": ((404, 0.5), (401, 0.2), (429, 0.1), (500, 0.15), (503, 0.05)),
    "UpdateParticipants": ((400, 0.6), (404, 0.15), (401, 0.1), (429, 0.05), (500, 0.1)),
}
SUCCESS_STATUS = {"CreateRoom": 201, "DeleteRoom": 204}
MEDIAN_MS = {"CreateRoom": 85, "GetRoom": 18, "UpdateRoom": 60, "DeleteRoom": 40, "ListRooms": 70,
             "GetParticipants": 25, "UpdateParticipants": 95}
CALLER_IPS = tuple(f"203.0.113.{n}" for n in range(1, 21))


def _pick(rng: random.Random, weighted: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _guid(rng: random.Random) -> str:
    """A random version-4 GUID string drawn from `rng` (so it repeats with the seed)."""
    digits = f"{rng.getrandbits(122):031x}"
    return f"{digits[:8]}-{digits[8:12]}-4{digits[12:15]}-{'89ab'[int(digits[15], 16) & 3]}{digits[16:19]}-{digits[19:31]}"


def _correlation_id(rng: random.Random) -> str:
    return base64.b64encode(rng.getrandbits(128).to_bytes(16, "big")).decode().rstrip("=")


@dataclass
class Participant:
    raw_id: str
    role: str


@dataclass
class Connection:
    participant_id: str
    identifier: str
    role: str | None
    endpoint: str  # VoIP or PSTN
    joined: datetime
    left: datetime
    reason: str


@dataclass
class Call:
    correlation_id: str
    server_call_id: str
    room_id: str
    started: datetime
    ended: datetime
    connections: list[Connection] = field(default_factory=list)


@dataclass
class Simulation:
    """Everything simulated, in memory: operation records, rooms' rosters and calls."""

    operations: list[RoomsOperationRecord]
    rosters: dict[str, list[Participant]]
    calls: list[Call]
    resource_id: str = DEFAULT_RESOURCE_ID


def simulate(seed: int, rooms: int, days: int, start: datetime = DEFAULT_START,
             resource_id: str = DEFAULT_RESOURCE_ID) -> Simulation:
    """Simulate `rooms` rooms over `days` days from `start`; the same arguments give the same result.

    Raises ValueError for non-positive rooms or days.
    """
    if rooms <= 0 or days <= 0:
        raise ValueError("rooms and days must be positive")
    rng = random.Random(seed)
    acs_resource = _guid(rng)
    window_end = start + timedelta(days=days)
    operations: list[RoomsOperationRecord] = []
    rosters: dict[str, list[Participant]] = {}
    calls: list[Call] = []
    for _ in range(rooms):
        created = start + timedelta(seconds=rng.uniform(0, days * 86400 * 0.9))
        version = _pick(rng, VERSIONS)
        room_id = str(rng.randrange(10**16, 10**17))
        lifespan = _pick(rng, LIFESPANS_MINUTES)
        pstn = rng.random() < 0.3 if version != "2023-06-14" else None
        roster = _roster(rng, acs_resource, version)
        ops = _room_operations(rng, room_id, version, created, lifespan, pstn, roster)
        operations.extend(ops)
        if any(op.operation_name == "CreateRoom" and op.result_type == "Succeeded" for op in ops):
            rosters[room_id] = roster
            valid_until = min(created + timedelta(minutes=lifespan), window_end)
            calls.extend(_room_calls(rng, room_id, roster, created, valid_until, bool(pstn)))
    for _ in range(max(1, rooms // 5)):  # ListRooms is not about one room
        moment = start + timedelta(seconds=rng.uniform(0, days * 86400))
        operations.append(_operation(rng, "ListRooms", _pick(rng, VERSIONS), moment, None))
    operations.sort(key=lambda op: op.time_generated)
    calls.sort(key=lambda call: call.started)
    return Simulation(operations, rosters, calls, resource_id)


def _roster(rng: random.Random, acs_resource: str, version: str) -> list[Participant]:
    size = 2 + min(int(rng.expovariate(1 / 5)), 40)
    participants = [Participant(f"8:acs:{acs_resource}_{_guid(rng)}", "Presenter")]
    for _ in range(size - 1):
        draw = rng.random()
        if version == "2025-03-13" and draw < 0.15:
            role = "Collaborator"
        elif draw < 0.3:
            role = "Consumer"
        elif draw < 0.35:
            role = "Presenter"
        else:
            role = "Attendee"
        participants.append(Participant(f"8:acs:{acs_resource}_{_guid(rng)}", role))
    return participants


def _role_counts(roster: Sequence[Participant]) -> dict[str, int]:
    roles = [p.role for p in roster]
    return {"participants_count": len(roles), "presenters": roles.count("Presenter"),
            "attendees": roles.count("Attendee"), "consumers": roles.count("Consumer"),
            "collaborators": roles.count("Collaborator")}


def _operation(rng: random.Random, name: str, version: str, moment: datetime, room_id: str | None,
               **room: Any) -> RoomsOperationRecord:
    failed = rng.random() < FAILURE_RATE
    status = _pick(rng, FAILURES[name]) if failed else SUCCESS_STATUS.get(name, 200)
    duration = rng.lognormvariate(0, 0.6) * MEDIAN_MS[name] * (3 if status >= 500 else 1)
    return RoomsOperationRecord(
        time_generated=moment, correlation_id=_correlation_id(rng), operation_name=name, operation_version=version,
        result_signature=status, duration_ms=round(duration, 3), caller_ip_address=rng.choice(CALLER_IPS),
        room_id=room_id if not (failed and name == "CreateRoom") else None, **({} if failed else room),
    )


def _room_operations(rng: random.Random, room_id: str, version: str, created: datetime, lifespan: int,
                     pstn: bool | None, roster: list[Participant]) -> list[RoomsOperationRecord]:
    counts = _role_counts(roster)
    state = {"room_lifespan_minutes": lifespan, "pstn_dial_out_enabled": pstn, **counts}
    create = _operation(rng, "CreateRoom", version, created, room_id, added_participants=len(roster), **state)
    if create.result_type == "Failed":
        return [create]
    ops = [create]
    moment = created
    for _ in range(rng.randrange(1, 12)):
        moment += timedelta(seconds=rng.expovariate(1 / 900))
        name = rng.choices(("GetRoom", "GetParticipants", "UpdateParticipants", "UpdateRoom"),
                           weights=(0.5, 0.25, 0.15, 0.1))[0]
        extra: dict[str, Any] = {}
        if name == "UpdateParticipants":
            extra = {"upserted_participants": rng.randrange(1, 4), "removed_participants": rng.randrange(0, 2)}
        elif name == "UpdateRoom" and rng.random() < 0.5:
            state["room_lifespan_minutes"] = lifespan = lifespan + 60
        ops.append(_operation(rng, name, version, moment, room_id, **state, **extra))
    if rng.random() < 0.2:  # deleted early, some time after its last call could have ended
        moment += timedelta(minutes=min(lifespan, 3 * 24 * 60) * rng.random())
        ops.append(_operation(rng, "DeleteRoom", version, moment, room_id, **state))
    return ops


def _room_calls(rng: random.Random, room_id: str, roster: list[Participant], valid_from: datetime,
                valid_until: datetime, pstn: bool) -> list[Call]:
    window = (valid_until - valid_from).total_seconds()
    if window < 600:
        return []
    result = []
    for _ in range(rng.choices((0, 1, 2, 3), weights=(0.2, 0.5, 0.2, 0.1))[0]):
        planned = valid_from + timedelta(seconds=rng.uniform(0, window - 600))
        length = timedelta(minutes=min(rng.lognormvariate(3.4, 0.5), 180))
        call = _one_call(rng, room_id, roster, planned, length, pstn)
        if call is not None:
            result.append(call)
    return result


def _one_call(rng: random.Random, room_id: str, roster: list[Participant], planned: datetime,
              length: timedelta, pstn: bool) -> Call | None:
    end_planned = planned + length
    connections = []
    for person in roster:
        if rng.random() < 0.15:  # no-show
            continue
        late = rng.random() < 0.15
        join = planned + timedelta(seconds=rng.uniform(300, 1200) if late else rng.uniform(0, 180))
        early = rng.random() < 0.15
        leave = end_planned - timedelta(seconds=rng.uniform(300, 1200) if early else rng.uniform(0, 60))
        if leave <= join:
            leave = join + timedelta(seconds=30)
        if rng.random() < 0.05 and (leave - join).total_seconds() > 240:  # dropped and rejoined
            drop = join + (leave - join) / 3
            connections.append(Connection(_guid(rng), person.raw_id, person.role, "VoIP", join, drop, "NetworkDrop"))
            join = drop + timedelta(seconds=rng.uniform(10, 60))
        connections.append(Connection(_guid(rng), person.raw_id, person.role, "VoIP", join, leave, "Hangup"))
    if not connections:
        return None
    if pstn:
        for _ in range(rng.choice((0, 0, 1, 2))):
            join = planned + timedelta(seconds=rng.uniform(120, 600))
            leave = max(join + timedelta(seconds=60), end_planned - timedelta(seconds=rng.uniform(0, 600)))
            number = f"+1425555{rng.randrange(0, 10000):04d}"
            connections.append(Connection(_guid(rng), f"4:{number}", None, "PSTN", join, leave, "Hangup"))
    started = min(c.joined for c in connections)
    ended = max(c.left for c in connections)
    server = base64.b64encode(f"https://sim.conv.example/conv/{_guid(rng)}".encode()).decode().rstrip("=")
    return Call(_guid(rng), server, room_id, started, ended, connections)


# --- writers -----------------------------------------------------------------------------------

def _dump_lines(path: Path, records: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("wb") as handle:
        buffer = []
        for record in records:
            buffer.append(orjson.dumps(record))
            count += 1
            if len(buffer) >= 10_000:
                handle.write(b"\n".join(buffer) + b"\n")
                buffer.clear()
        if buffer:
            handle.write(b"\n".join(buffer) + b"\n")
    return count


def _write_hourly(out: Path, resource_id: str, category: str, records: Iterable[tuple[datetime, dict]]) -> list[Path]:
    """Storage-account layout: one PT1H.json per hour (records must come in time order)."""
    files: list[Path] = []
    current, lines = None, []

    def flush() -> None:
        if current is not None:
            files.append(current)
            current.parent.mkdir(parents=True, exist_ok=True)
            current.write_bytes(b"\n".join(lines) + b"\n")

    hour = None
    for moment, record in records:
        if moment.replace(minute=0, second=0, microsecond=0) != hour:
            hour = moment.replace(minute=0, second=0, microsecond=0)
            flush()
            current, lines = out / diagnostic_blob_path(resource_id, moment, category), []
        lines.append(orjson.dumps(record))
    flush()
    return files


def _la_time(moment: datetime) -> str:
    """The Log Analytics UI export format, e.g. `5/25/2023, 4:32:49.469 AM`."""
    hour = moment.hour % 12 or 12
    return (f"{moment.month}/{moment.day}/{moment.year}, {hour}:{moment:%M:%S}."
            f"{moment.microsecond // 1000:03d} {'AM' if moment.hour < 12 else 'PM'}")


def _event(kind: str, call: Call, moment: datetime, rng: random.Random, schema: str, resource_id: str,
           subject: str, data: dict[str, Any]) -> dict[str, Any]:
    common = {"serverCallId": call.server_call_id, "group": {"id": "00000000-0000-0000-0000-000000000000"},
              "room": {"id": call.room_id}, "isTwoParty": False, "correlationId": call.correlation_id,
              "isRoomsCall": True, **data}
    if schema == "eventgrid":
        return {"id": _guid(rng), "topic": resource_id.lower(), "subject": subject, "data": common,
                "eventType": f"Microsoft.Communication.{kind}", "dataVersion": "1.0", "metadataVersion": "1",
                "eventTime": format_log_time(moment)}
    return {"source": resource_id, "subject": subject, "type": f"Microsoft.Communication.{kind}",
            "time": format_log_time(moment), "id": _guid(rng), "data": common, "specversion": "1.0"}


def _identifier(connection: Connection) -> dict[str, Any]:
    return {"communicationIdentifier": {"kind": "communicationUser", "rawId": connection.identifier,
                                        "communicationUser": {"id": connection.identifier}},
            "role": connection.role}


def call_events(simulation: Simulation, schema: str, seed: int, limit: int | None = None) -> list[dict[str, Any]]:
    """Calling events of every call (of the earliest calls up to `limit` events), in time order.

    Event Grid (`eventgrid`) or CloudEvents (`cloudevents`) shaped; VoIP participants only, as ACS
    publishes no calling events for PSTN participants.
    """
    rng = random.Random(seed ^ 0x5EED)
    timed: list[tuple[datetime, int, dict[str, Any]]] = []
    for call in simulation.calls:
        if limit is not None and len(timed) >= limit:
            break  # calls come in start order: the earliest calls give (about) the earliest events
        voip = [c for c in call.connections if c.endpoint == "VoIP"]
        if not voip:
            continue
        starter = min(voip, key=lambda c: c.joined)
        started_by = _identifier(starter)
        base = f"call/{call.server_call_id}"
        timed.append((call.started, 0, _event("CallStarted", call, call.started, rng, schema, simulation.resource_id,
                                               f"{base}/startedBy/{starter.identifier}", {"startedBy": started_by})))
        for connection in voip:
            details = {"user": _identifier(connection), "displayName": f"User {connection.identifier[-4:]}",
                       "participantId": connection.participant_id, "startedBy": started_by,
                       "userAgent": "anteroom-sim/1.0", "endpointType": "anteroom-sim/1.0"}
            subject = f"{base}/participant/{connection.identifier}"
            timed.append((connection.joined, 1, _event("CallParticipantAdded", call, connection.joined, rng, schema,
                                                       simulation.resource_id, subject, details)))
            timed.append((connection.left, 2, _event("CallParticipantRemoved", call, connection.left, rng, schema,
                                                     simulation.resource_id, subject, details)))
        duration = (call.ended - call.started).total_seconds()
        timed.append((call.ended, 3, _event("CallEnded", call, call.ended, rng, schema, simulation.resource_id, base, {
            "startedBy": started_by, "callDurationInSeconds": duration, "durationOfCall": duration,
            "endedBy": {"communicationIdentifier": started_by["communicationIdentifier"], "type": "Participant",
                        "name": "User"},
            "reason": {"code": 0, "subCode": 0, "phrase": "CallEnded"}})))
    timed.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in timed[:limit]]


def call_summary_records(simulation: Simulation) -> list[tuple[datetime, dict[str, Any]]]:
    """ACSCallSummary raw records (one per connection, PSTN included), with the samples' text-typed numbers."""
    records = []
    for call in simulation.calls:
        for connection in call.connections:
            pstn = connection.endpoint == "PSTN"
            records.append((call.ended, {
                "time": format_log_time(call.ended),
                "resourceId": simulation.resource_id.strip("/").upper(),
                "correlationId": call.correlation_id, "operationName": "CallSummary", "operationVersion": "1.0",
                "category": "CallSummary",
                "properties": {
                    "identifier": "null" if pstn else connection.identifier.removeprefix("8:"),
                    "callStartTime": format_log_time(call.started),
                    "callDuration": str(int((call.ended - call.started).total_seconds())),
                    "callType": "Group", "teamsThreadId": "null", "participantId": connection.participant_id,
                    "participantStartTime": format_log_time(connection.joined),
                    "participantDuration": str(int((connection.left - connection.joined).total_seconds())),
                    "participantEndReason": "0", "endpointId": connection.participant_id,
                    "endpointType": connection.endpoint, "sdkVersion": "1.0.0", "osVersion": "Redacted",
                }}))
    records.sort(key=lambda item: item[0])
    return records


def write_formats(simulation: Simulation, out_dir: str | os.PathLike, formats: Sequence[str], seed: int,
                  limit: int | None = None) -> list[Path]:
    """Write the simulation in each of `formats` under `out_dir`; returns the files written.

    `limit` caps operation records and call events/records per format (the earliest are kept).
    Raises ValueError for an unknown format.
    """
    unknown = set(formats) - set(SIMULATION_FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s) {sorted(unknown)}; expected {', '.join(SIMULATION_FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    operations = simulation.operations[:limit]
    files: list[Path] = []
    resource = simulation.resource_id
    if "diagnostic" in formats:
        files += _write_hourly(out, resource, DIAGNOSTIC_CATEGORY,
                               ((op.time_generated, op.to_diagnostic_record(resource)) for op in operations))
    if "eventhub" in formats:
        path = out / "eventhub-roomsoperational.jsonl"
        records = [op.to_diagnostic_record(resource) for op in operations]
        _dump_lines(path, ({"records": records[i:i + 100]} for i in range(0, len(records), 100)))
        files.append(path)
    if "la-json" in formats:
        path = out / "ACSRoomsIncomingOperations.json"
        path.write_bytes(orjson.dumps([{**_la_columns(op, resource), "TimeGenerated": format_log_time(op.time_generated)}
                                       for op in operations]))
        files.append(path)
    if "la-csv" in formats:
        path = out / "ACSRoomsIncomingOperations.csv"
        _write_la_csv(path, operations, resource)
        files.append(path)
    for schema_name in ("eventgrid", "cloudevents"):
        if schema_name in formats:
            path = out / f"{schema_name}-calls.jsonl"
            _dump_lines(path, call_events(simulation, schema_name, seed, limit))
            files.append(path)
    if "callsummary" in formats:
        files += _write_hourly(out, resource, "CallSummary", call_summary_records(simulation)[:limit])
    if "roster" in formats:
        path = out / "rooms-participants.jsonl"
        _dump_lines(path, ({"roomId": room_id, "value": [{"rawId": p.raw_id, "role": p.role} for p in roster]}
                           for room_id, roster in simulation.rosters.items()))
        files.append(path)
    return files


def _la_columns(op: RoomsOperationRecord, resource_id: str) -> dict[str, Any]:
    columns = op.to_log_analytics()
    columns["_ResourceId"] = resource_id.lower()
    return columns


def _write_la_csv(path: Path, operations: Sequence[RoomsOperationRecord], resource_id: str) -> None:
    from .schema import OPERATIONS

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(OPERATIONS), extrasaction="ignore")
        writer.writeheader()
        for op in operations:
            row = _la_columns(op, resource_id)
            row["TimeGenerated"] = _la_time(op.time_generated)
            if "PstnDialOutEnabled" in row:
                row["PstnDialOutEnabled"] = str(row["PstnDialOutEnabled"]).lower()
            writer.writerow(row)
