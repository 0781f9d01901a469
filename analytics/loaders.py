"""Loaders: every supported input (files, folders, Table storage) into the normalized frames; the only code doing I/O."""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from . import schema
from .app_logs import (CALLS_TABLE_SUFFIX, DEFAULT_TABLE_PREFIX, DIAGNOSTIC_CATEGORY, OPERATION_NAMES,
                       OPERATIONS_TABLE_SUFFIX, PARTICIPANTS_TABLE_SUFFIX, ROOM_COLUMNS, read_call_records,
                       read_operation_records, read_participant_records)
from .readers import Field, InputFormatError, RecordColumns, csv_header, read_csv_columns, read_json_columns

OPERATION_FORMATS = ("diagnostic", "eventhub", "la-json", "la-csv")
CALL_FORMATS = ("eventgrid", "cloudevents", "callsummary")
FORMATS = (*OPERATION_FORMATS, *CALL_FORMATS, "roster")
CALL_EVENT_TYPES = {
    f"Microsoft.Communication.{name}": name
    for name in ("CallStarted", "CallEnded", "CallParticipantAdded", "CallParticipantRemoved")
}
_FILE_SUFFIXES = {".json", ".jsonl", ".ndjson", ".csv"}

_INT_COLUMNS = {c for c in ROOM_COLUMNS if c not in ("RoomId", "PstnDialOutEnabled")}


def _room_type(column: str) -> pa.DataType:
    if column == "PstnDialOutEnabled":
        return pa.bool_()
    return pa.int64() if column in _INT_COLUMNS else pa.string()


# RoomsOperational raw records (diagnostic settings, event hub): Part C.4 names -> Log Analytics columns.
DIAGNOSTIC_FIELDS = (
    Field("TimeGenerated", (("time",),)),
    Field("CorrelationId", (("correlationId",),)),
    Field("Level", (("level",),)),
    Field("OperationName", (("operationName",),)),
    Field("OperationVersion", (("operationVersion",),)),
    Field("ResultType", (("resultType",),)),
    Field("ResultSignature", (("resultSignature",),)),
    Field("DurationMs", (("durationMs",),), pa.float64()),
    Field("CallerIpAddress", (("callerIpAddress",),)),
    Field("_ResourceId", (("resourceId",),)),
    Field("Category", (("category",),)),
    *(Field(column, (("properties", column),), _room_type(column)) for column in ROOM_COLUMNS),
)
LOG_ANALYTICS_FIELDS = tuple(
    Field(name, ((name,),), {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}.get(kind, pa.string()))
    for name, kind in schema.OPERATIONS.items()
)

_EVENT_USER = ("data", "user")
EVENT_FIELDS = (
    Field("EventId", (("id",),)),
    Field("EventType", (("eventType",), ("type",))),
    Field("EventTime", (("eventTime",), ("time",))),
    Field("ServerCallId", (("data", "serverCallId"),)),
    Field("CorrelationId", (("data", "correlationId"),)),
    Field("RoomId", (("data", "room", "id"),)),
    Field("ParticipantId", (("data", "participantId"),)),
    Field("Identifier", ((*_EVENT_USER, "communicationIdentifier", "rawId"), (*_EVENT_USER, "rawId"))),
    Field("Role", ((*_EVENT_USER, "role"),)),
    Field("CallDuration", (("data", "callDurationInSeconds"), ("data", "durationOfCall")), pa.float64()),
    Field("ReasonPhrase", (("data", "reason", "phrase"),)),
)
EVENT_KINDS = {"EventId": "str", "EventType": "cat", "EventTime": "time", "ServerCallId": "str",
               "CorrelationId": "str", "RoomId": "str", "ParticipantId": "str", "Identifier": "str",
               "Role": "cat", "CallDuration": "float", "ReasonPhrase": "cat"}

_SUMMARY_PROPERTIES = ("Identifier", "CallStartTime", "CallDuration", "ParticipantId", "ParticipantStartTime",
                       "ParticipantDuration", "ParticipantEndReason", "EndpointId", "EndpointType")
# ACSCallSummary, raw (camelCase under `properties`) or as Log Analytics columns; numbers may be text.
CALL_SUMMARY_FIELDS = (
    Field("TimeGenerated", (("time",), ("TimeGenerated",))),
    Field("CorrelationId", (("correlationId",), ("CorrelationId",))),
    *(Field(name, (("properties", name[0].lower() + name[1:]), (name,))) for name in _SUMMARY_PROPERTIES),
)
SUMMARY_KINDS = {"TimeGenerated": "time", "CorrelationId": "str", "Identifier": "str",
                 "CallStartTime": "time", "CallDuration": "float", "ParticipantId": "str",
                 "ParticipantStartTime": "time", "ParticipantDuration": "float", "ParticipantEndReason": "cat",
                 "EndpointId": "str", "EndpointType": "cat"}


@dataclass
class Dataset:
    """The normalized frames of everything loaded, and where it came from."""

    operations: pd.DataFrame = field(default_factory=lambda: schema.empty(schema.OPERATIONS))
    attendance: pd.DataFrame = field(default_factory=lambda: schema.empty(schema.ATTENDANCE))
    roster: pd.DataFrame = field(default_factory=lambda: schema.empty(schema.ROSTER))
    sources: list[str] = field(default_factory=list)


# --- format detection ----------------------------------------------------------------------------

def _first_json_record(path: Path) -> Any:
    with path.open("rb") as handle:
        first_line = handle.readline(1 << 20)
    try:
        value = orjson.loads(first_line)
    except orjson.JSONDecodeError:
        try:
            value = orjson.loads(path.read_bytes())  # one pretty-printed document
        except orjson.JSONDecodeError as error:
            raise InputFormatError(path, first_line and 1, f"not JSON or JSON lines ({error})") from None
    while isinstance(value, list):
        if not value:
            return None
        value = value[0]
    if isinstance(value, dict) and isinstance(value.get("records"), list):
        return {"records": True, **(value["records"][0] if value["records"] else {})}
    return value


def _classify_record(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    keys = set(record)
    category = str(record.get("category", "")).lower()
    operation = record.get("operationName")
    wrapped = record.get("records") is True
    if category == DIAGNOSTIC_CATEGORY.lower() or (operation in OPERATION_NAMES and "properties" in keys):
        return "eventhub" if wrapped else "diagnostic"
    if category == "callsummary" or operation == "CallSummary" or keys & {"CallStartTime", "ParticipantStartTime"}:
        return "callsummary"
    if "eventType" in keys:
        return "eventgrid"
    if "specversion" in keys:
        return "cloudevents"
    if "OperationName" in keys and keys & {"ResultType", "ResultSignature"}:
        return "la-json"
    if keys & {"roomId", "RoomId"} and keys & {"value", "RawId", "rawId"}:
        return "roster"
    return None


def detect_format(path: str | os.PathLike) -> str:
    """The input format of one file, from its CSV header or its first JSON record.

    Raises InputFormatError when the file is neither a known export nor recognizable.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        header = set(csv_header(path))
        if "OperationName" in header:
            return "la-csv"
        if header & {"CallStartTime", "ParticipantStartTime"}:
            return "callsummary"
        if {"RoomId", "RawId"} <= header:
            return "roster"
        raise InputFormatError(path, 1, "CSV header matches no known export (ACSRoomsIncomingOperations, "
                                        "ACSCallSummary, or a RoomId,RawId,Role roster)")
    kind = _classify_record(_first_json_record(path))
    if kind is None:
        raise InputFormatError(path, 1, "the first record matches no known log or event format")
    return kind


def _expand(paths: Iterable[str | os.PathLike]) -> list[Path]:
    files = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _FILE_SUFFIXES))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such input: {path}")
    return files


# --- operations --------------------------------------------------------------------------------

def _read_operations(path: Path, kind: str, progress: bool) -> RecordColumns:
    if kind == "la-csv":
        read = read_csv_columns(path, list(schema.OPERATIONS))
    elif kind == "la-json":
        read = read_json_columns(path, LOG_ANALYTICS_FIELDS, progress=progress)
    else:
        read = read_json_columns(path, DIAGNOSTIC_FIELDS, envelope="records" if kind == "eventhub" else None,
                                 progress=progress)
    return read


def operations_from_reads(reads: list[RecordColumns]) -> pd.DataFrame:
    """The operations frame from raw reads; raises InputFormatError naming the file and line of a bad value."""
    if not reads:
        return schema.empty(schema.OPERATIONS)
    frame, locate = schema.read_frame(reads)
    if "Category" in frame.columns:
        # An event hub or storage folder can mix categories; keep the Rooms records (LA exports have none).
        category = frame["Category"].astype("string").str.lower()
        keep = (category.isna() | (category == DIAGNOSTIC_CATEGORY.lower())).to_numpy(dtype=bool)
        if not keep.all():
            kept = np.flatnonzero(keep)
            frame = frame.iloc[kept].reset_index(drop=True)
            locate = _shifted(locate, kept)
    return schema.finish_operations(schema.normalize(frame, schema.OPERATIONS, locate))


def _shifted(locate: schema.Locate, kept: np.ndarray) -> schema.Locate:
    return lambda index: locate(int(kept[index]))


def operations_from_records(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The operations frame from Log Analytics column dicts (e.g. `shared.oplog.read_operation_records`)."""
    frame = pd.DataFrame.from_records(list(records))
    return schema.finish_operations(schema.normalize(frame, schema.OPERATIONS))


# --- call events and call summaries -----------------------------------------------------------

def events_from_reads(reads: list[RecordColumns]) -> pd.DataFrame:
    """Normalized Event Grid / CloudEvents calling events (other event types dropped, duplicates removed)."""
    frame, locate = schema.read_frame(reads)
    events = schema.normalize(frame, EVENT_KINDS, locate)
    short = events["EventType"].astype("string").map(CALL_EVENT_TYPES)
    events = events.assign(EventType=short.astype("category"))[short.notna().to_numpy()]
    # Event Grid delivers at least once: a redelivered event has the same id.
    has_id = events["EventId"].notna()
    events = pd.concat([events[has_id].drop_duplicates("EventId"), events[~has_id]], ignore_index=True)
    return events


def attendance_from_events(events: pd.DataFrame) -> pd.DataFrame:
    """One attendance row per participant connection, from normalized calling events.

    A participant with no removal event leaves when the call ends; a call with no start event starts
    at its end minus its duration, or at its first join. PSTN participants never appear here (ACS
    publishes calling events for VoIP users only).
    """
    by_call = events.groupby("CorrelationId", observed=True, sort=False)
    calls = pd.DataFrame({
        "RoomId": by_call["RoomId"].first(),
        "ServerCallId": by_call["ServerCallId"].first(),
    })
    started = events[events["EventType"] == "CallStarted"].groupby("CorrelationId")["EventTime"].min()
    ended_events = events[events["EventType"] == "CallEnded"].sort_values("EventTime")
    ended = ended_events.groupby("CorrelationId").agg(
        CallEndTime=("EventTime", "last"), CallDuration=("CallDuration", "last"), CallEndReason=("ReasonPhrase", "last"))
    calls = calls.join(started.rename("CallStartTime")).join(ended)

    key = events["ParticipantId"].fillna(events["Identifier"])
    people = events.assign(ParticipantKey=key)
    added = people[people["EventType"] == "CallParticipantAdded"].groupby(["CorrelationId", "ParticipantKey"]).agg(
        ParticipantId=("ParticipantId", "first"), Identifier=("Identifier", "first"), Role=("Role", "first"),
        ParticipantStartTime=("EventTime", "min"))
    removed = people[people["EventType"] == "CallParticipantRemoved"].groupby(["CorrelationId", "ParticipantKey"]).agg(
        RemovedId=("ParticipantId", "first"), RemovedIdentifier=("Identifier", "first"),
        RemovedRole=("Role", "first"), ParticipantEndTime=("EventTime", "max"),
        ParticipantEndReason=("ReasonPhrase", "last"))
    participants = added.join(removed, how="outer").reset_index()
    participants["ParticipantId"] = participants["ParticipantId"].fillna(participants.pop("RemovedId"))
    participants["Identifier"] = participants["Identifier"].fillna(participants.pop("RemovedIdentifier"))
    participants["Role"] = participants["Role"].astype("string").fillna(participants.pop("RemovedRole").astype("string"))
    participants = participants.drop(columns="ParticipantKey")
    return _complete_attendance(calls, participants)


def _complete_attendance(calls: pd.DataFrame, participants: pd.DataFrame) -> pd.DataFrame:
    """Join call-level columns onto participant rows and fill what can be derived."""
    first_join = participants.groupby("CorrelationId")["ParticipantStartTime"].min()
    last_leave = participants.groupby("CorrelationId")["ParticipantEndTime"].max()
    calls = calls.copy()
    for column in ("CallStartTime", "CallEndTime", "CallDuration", "CallEndReason"):
        if column not in calls:
            calls[column] = pd.NA
    duration = pd.to_timedelta(pd.to_numeric(calls["CallDuration"], errors="coerce"), unit="s")
    start = pd.to_datetime(calls["CallStartTime"], utc=True)
    end = pd.to_datetime(calls["CallEndTime"], utc=True)
    start = start.fillna(end - duration).fillna(first_join.reindex(calls.index))
    end = end.fillna(start + duration).fillna(last_leave.reindex(calls.index))
    calls["CallStartTime"], calls["CallEndTime"] = start, end
    calls["CallDuration"] = (end - start).dt.total_seconds()
    call_columns = calls.reset_index()
    participant_columns = [c for c in participants.columns if c not in call_columns.columns or c == "CorrelationId"]
    rows = call_columns.merge(participants[participant_columns], on="CorrelationId", how="left")
    rows["ParticipantEndTime"] = pd.to_datetime(rows["ParticipantEndTime"], utc=True).fillna(rows["CallEndTime"])
    rows["ParticipantDuration"] = (
        rows["ParticipantEndTime"] - pd.to_datetime(rows["ParticipantStartTime"], utc=True)).dt.total_seconds()
    if "EndpointType" not in rows:
        rows["EndpointType"] = np.where(rows["ParticipantId"].notna(), "VoIP", None)
    return schema.normalize(rows, schema.ATTENDANCE)


def attendance_from_summary_reads(reads: list[RecordColumns]) -> pd.DataFrame:
    """Attendance rows from ACSCallSummary records (raw or Log Analytics columns).

    Literal "null" strings count as missing; a P2P record without ParticipantId uses its EndpointId.
    Room ids are not in ACSCallSummary; `combine_attendance` fills them from calling events.
    """
    frame, locate = schema.read_frame(reads)
    summary = schema.normalize(frame, SUMMARY_KINDS, locate)
    rows = pd.DataFrame({
        "CorrelationId": summary["CorrelationId"],
        "CallStartTime": summary["CallStartTime"],
        "CallDuration": summary["CallDuration"],
        "ParticipantId": summary["ParticipantId"].fillna(summary["EndpointId"]),
        "Identifier": summary["Identifier"],
        "EndpointType": summary["EndpointType"].astype("string").replace({"VOIP": "VoIP"}),
        "ParticipantStartTime": summary["ParticipantStartTime"],
        "ParticipantDuration": summary["ParticipantDuration"],
        "ParticipantEndReason": summary["ParticipantEndReason"],
    })
    rows["CallEndTime"] = rows["CallStartTime"] + pd.to_timedelta(rows["CallDuration"], unit="s")
    rows["ParticipantEndTime"] = rows["ParticipantStartTime"] + pd.to_timedelta(rows["ParticipantDuration"], unit="s")
    return schema.normalize(rows, schema.ATTENDANCE, locate)


def attendance_from_call_log(calls: Iterable[dict[str, Any]], participants: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Attendance rows from our call log (`shared.calllog` column dicts of calls and participants)."""
    call_frame = pd.DataFrame.from_records(list(calls))
    participant_frame = pd.DataFrame.from_records(list(participants))
    if call_frame.empty and participant_frame.empty:
        return schema.empty(schema.ATTENDANCE)
    if call_frame.empty:
        call_frame = pd.DataFrame({"CorrelationId": participant_frame["CorrelationId"].unique()})
    if participant_frame.empty:
        participant_frame = pd.DataFrame(columns=["CorrelationId", "ParticipantStartTime", "ParticipantEndTime"])
    call_frame = call_frame.drop_duplicates("CorrelationId", keep="last").set_index("CorrelationId")
    # Records leave out what is not known yet (a live call has no end): those columns are missing, not empty.
    for frame, columns in ((call_frame, ("CallStartTime", "CallEndTime")),
                           (participant_frame, ("ParticipantStartTime", "ParticipantEndTime"))):
        for column in columns:
            frame[column] = (pd.to_datetime(frame[column], utc=True) if column in frame
                             else pd.Series(pd.NaT, index=frame.index, dtype=schema.TIME_DTYPE))
    participant_frame = participant_frame.drop(columns=[c for c in ("TimeGenerated", "CallType", "RoomId", "CallStartTime")
                                                        if c in participant_frame])
    return _complete_attendance(call_frame, participant_frame)


def combine_attendance(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Merge attendance from several sources: one row per (call, participant), gaps filled across sources.

    Call-level columns (room, start, end) are shared by every row of a call, so a call summary row
    (no room id) gets the room from the calling events of the same call.
    """
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return schema.empty(schema.ATTENDANCE)
    if len(frames) == 1:
        return frames[0]
    rows = pd.concat([frame.astype({c: "string" for c in frame.select_dtypes("category")}) for frame in frames],
                     ignore_index=True)
    rows["_Key"] = rows["ParticipantId"].fillna("")
    merged = rows.groupby(["CorrelationId", "_Key"], sort=False, dropna=False).first()
    merged = merged.reset_index().drop(columns="_Key")
    # Calls with participants do not need the placeholder row of a source that had none.
    has_people = merged.groupby("CorrelationId")["ParticipantId"].transform("count") > 0
    merged = merged[merged["ParticipantId"].notna() | ~has_people]
    for column in ("RoomId", "ServerCallId", "CallStartTime", "CallEndTime", "CallEndReason"):
        merged[column] = merged.groupby("CorrelationId")[column].transform("first")
    merged["CallDuration"] = (merged["CallEndTime"] - merged["CallStartTime"]).dt.total_seconds()
    return schema.normalize(merged, schema.ATTENDANCE)


# --- roster ----------------------------------------------------------------------------------

def roster_from_file(path: Path) -> pd.DataFrame:
    """A roster from CSV (RoomId,RawId,Role) or JSON: Rooms API participant pages with a roomId, or flat rows.

    Raises InputFormatError naming the file and line of a record that is neither.
    """
    if path.suffix.lower() == ".csv":
        read = read_csv_columns(path, list(schema.ROSTER))
        frame, locate = schema.read_frame([read])
        return schema.normalize(frame, schema.ROSTER, locate)
    rows: list[tuple[Any, Any, Any]] = []
    text = path.read_bytes()
    values: list[tuple[int, Any]]
    try:
        document = orjson.loads(text)
        values = [(1, item) for item in (document if isinstance(document, list) else [document])]
    except orjson.JSONDecodeError:
        values = []
        for number, line in enumerate(text.split(b"\n"), start=1):
            if line.strip():
                try:
                    values.append((number, orjson.loads(line)))
                except orjson.JSONDecodeError as error:
                    raise InputFormatError(path, number, f"not valid JSON ({error})") from None
    for number, value in values:
        if not isinstance(value, dict):
            raise InputFormatError(path, number, "expected a roster object")
        room = value.get("roomId", value.get("RoomId"))
        if isinstance(value.get("value"), list):
            for item in value["value"]:
                rows.append((room, item.get("rawId") if isinstance(item, dict) else None,
                             item.get("role", "Attendee") if isinstance(item, dict) else None))
        elif "rawId" in value or "RawId" in value:
            rows.append((room, value.get("rawId", value.get("RawId")), value.get("role", value.get("Role"))))
        else:
            raise InputFormatError(path, number, "expected {roomId, value: [{rawId, role}]} or {RoomId, RawId, Role}")
        if room is None:
            raise InputFormatError(path, number, "roster entry without a room id")
    return schema.normalize(pd.DataFrame(rows, columns=list(schema.ROSTER)), schema.ROSTER)


# --- Table storage ---------------------------------------------------------------------------

def load_table_storage(
    connection_string: str,
    *,
    table_prefix: str = DEFAULT_TABLE_PREFIX,
    operations_table: str | None = None,
    calls_table: str | None = None,
    participants_table: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Dataset:
    """Load our own operation and call logs from Table storage; missing tables load as empty.

    Table names are the app's (`<table_prefix>RoomsOperations`, ...) unless given one by one.
    Raises azure.core exceptions for storage failures other than a missing table.
    """
    operations_table = operations_table or table_prefix + OPERATIONS_TABLE_SUFFIX
    calls_table = calls_table or table_prefix + CALLS_TABLE_SUFFIX
    participants_table = participants_table or table_prefix + PARTICIPANTS_TABLE_SUFFIX
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableServiceClient

    def rows(service: Any, table: str, reader: Any) -> list[dict[str, Any]]:
        try:
            return list(reader(service.get_table_client(table), since, until))
        except ResourceNotFoundError:
            return []

    with TableServiceClient.from_connection_string(connection_string) as service:
        operations = rows(service, operations_table, read_operation_records)
        calls = rows(service, calls_table, read_call_records)
        participants = rows(service, participants_table, read_participant_records)
    return Dataset(
        operations=operations_from_records(operations) if operations else schema.empty(schema.OPERATIONS),
        attendance=attendance_from_call_log(calls, participants),
        sources=[f"table storage ({operations_table}, {calls_table}, {participants_table})"],
    )


# --- everything ------------------------------------------------------------------------------

def load_inputs(
    inputs: Iterable[str | os.PathLike], *, input_format: str | None = None, progress: bool = True
) -> Dataset:
    """Load files and folders (searched recursively) into one Dataset, detecting each file's format.

    `input_format` forces one format for every file. Raises FileNotFoundError for a missing input,
    InputFormatError for a file that is unrecognizable or malformed (naming file and line), and
    ValueError for an unknown `input_format`.
    """
    if input_format is not None and input_format not in FORMATS:
        raise ValueError(f"unknown input format {input_format!r}; expected one of {', '.join(FORMATS)}")
    operation_reads: list[RecordColumns] = []
    event_reads: list[RecordColumns] = []
    summary_reads: list[RecordColumns] = []
    rosters: list[pd.DataFrame] = []
    sources = []
    for path in _expand(inputs):
        kind = input_format or detect_format(path)
        sources.append(f"{path} ({kind})")
        if kind in OPERATION_FORMATS:
            operation_reads.append(_read_operations(path, kind, progress))
        elif kind in ("eventgrid", "cloudevents"):
            event_reads.append(read_json_columns(path, EVENT_FIELDS, progress=progress))
        elif kind == "callsummary":
            if path.suffix.lower() == ".csv":
                read = read_csv_columns(path, [f.name for f in CALL_SUMMARY_FIELDS])
            else:
                read = read_json_columns(path, CALL_SUMMARY_FIELDS, envelope="records", progress=progress)
            summary_reads.append(read)
        else:
            rosters.append(roster_from_file(path))
    operations = operations_from_reads(operation_reads)
    if len(operation_reads) > 1:  # the same request exported twice counts once
        operations = operations.drop_duplicates(["CorrelationId", "OperationName"], ignore_index=True)
    attendance = []
    if event_reads:
        attendance.append(attendance_from_events(events_from_reads(event_reads)))
    if summary_reads:
        attendance.append(attendance_from_summary_reads(summary_reads))
    roster = (pd.concat(rosters, ignore_index=True).drop_duplicates(["RoomId", "RawId"], keep="last")
              if rosters else schema.empty(schema.ROSTER))
    return Dataset(operations=operations, attendance=combine_attendance(attendance),
                   roster=schema.normalize(roster, schema.ROSTER), sources=sources)


def merge_datasets(datasets: Sequence[Dataset]) -> Dataset:
    """One Dataset from several (e.g. files plus Table storage)."""
    operations = [d.operations for d in datasets if len(d.operations)]
    rosters = [d.roster for d in datasets if len(d.roster)]
    return Dataset(
        operations=schema.normalize(pd.concat(operations, ignore_index=True), schema.OPERATIONS)
        if operations else schema.empty(schema.OPERATIONS),
        attendance=combine_attendance([d.attendance for d in datasets]),
        roster=schema.normalize(pd.concat(rosters, ignore_index=True), schema.ROSTER)
        if rosters else schema.empty(schema.ROSTER),
        sources=[s for d in datasets for s in d.sources],
    )
