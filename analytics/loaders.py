"""Loaders: every supported input (files, folders, Table storage) into the normalized frames; the only code doing I/O.

Files are read piece by piece (a whole small file such as an hourly PT1H.json, or about 32 MiB of
a large one), each piece normalized to typed Arrow columns at once and calling events folded into
attendance rows as they come, so memory follows the size of the result, not of the input.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from . import schema
from .calling import CallEventFold
from .app_logs import (CALLS_TABLE_SUFFIX, DEFAULT_TABLE_PREFIX, DIAGNOSTIC_CATEGORY, OPERATION_NAMES,
                       OPERATIONS_TABLE_SUFFIX, PARTICIPANTS_TABLE_SUFFIX, ROOM_COLUMNS, read_call_records,
                       read_operation_records, read_participant_records)
from .readers import (BadLines, Field, InputFormatError, Piece, csv_header, read_csv_pieces, read_json_pieces)

OPERATION_FORMATS = ("diagnostic", "eventhub", "la-json", "la-csv")
CALL_FORMATS = ("eventgrid", "cloudevents", "callsummary")
FORMATS = (*OPERATION_FORMATS, *CALL_FORMATS, "roster")
CALL_EVENT_TYPES = {
    f"Microsoft.Communication.{name}": name
    for name in ("CallStarted", "CallEnded", "CallParticipantAdded", "CallParticipantRemoved")
}
_FILE_SUFFIXES = {".json", ".jsonl", ".ndjson", ".csv"}
_DETECT_LINES = 8  # format detection looks at the first record among this many first lines

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
EVENT_KINDS = {"EventType": "cat", "EventTime": "time", "ServerCallId": "str",
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


_ROSTER_FIELDS = (
    Field("RoomId", (("roomId",), ("RoomId",))),
    Field("Value", (("value",),), pa.list_(pa.struct([("rawId", pa.string()), ("role", pa.string())]))),
    Field("RawId", (("rawId",), ("RawId",))),
    Field("Role", (("role",), ("Role",))),
)
# Rows normalized together: enough to keep per-call overhead small, few enough to keep memory flat.
BATCH_ROWS = 200_000
# Files read ahead of the one being normalized, and the size up to which a file is parsed whole on a worker.
READ_AHEAD = 4
SMALL_FILE_BYTES = 8 * 1024 * 1024


@dataclass
class Dataset:
    """The normalized frames of everything loaded, where it came from, and what was skipped as malformed."""

    operations: pd.DataFrame = field(default_factory=lambda: schema.empty(schema.OPERATIONS))
    attendance: pd.DataFrame = field(default_factory=lambda: schema.empty(schema.ATTENDANCE))
    roster: pd.DataFrame = field(default_factory=lambda: schema.empty(schema.ROSTER))
    sources: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per file with skipped malformed lines


class Progress:
    """One tqdm bar per input (a file, or a folder of files) over its bytes, naming the file being read."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bars: dict[int, Any] = {}

    def start(self, index: int, name: str, total: int) -> None:
        if self.enabled:
            self._bars[index] = tqdm(total=total, unit="B", unit_scale=True, desc=name, position=index, leave=False)

    def advance(self, index: int, path: Path) -> Callable[[int], None] | None:
        bar = self._bars.get(index)
        if bar is None:
            return None
        # An hourly PT1H.json is named by its hour folders (y=/m=/d=/h=), any other file by its name.
        bar.set_postfix_str("/".join(path.parts[-6:-2]) if path.name == "PT1H.json" else path.name, refresh=False)
        return bar.update

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


@dataclass
class _Input:
    path: Path
    kind: str
    index: int  # which input argument it came from (its progress bar)


# --- format detection ----------------------------------------------------------------------------

def _first_json_record(path: Path) -> Any:
    """The first record of a JSON file: from the first of its first lines that parses, else from the whole document."""
    with path.open("rb") as handle:
        lines = [handle.readline(1 << 20) for _ in range(_DETECT_LINES)]
    value, found = None, False
    for line in lines:
        if not line.strip():
            continue
        try:
            value, found = orjson.loads(line), True
            break
        except orjson.JSONDecodeError:
            continue  # a malformed first line: the reader names it (or skips it); detection looks further
    if not found:
        try:
            value = orjson.loads(path.read_bytes())  # one pretty-printed document
        except orjson.JSONDecodeError as error:
            raise InputFormatError(path, 1 if lines[0] else None, f"not JSON or JSON lines ({error})") from None
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


# --- pieces into normalized tables -------------------------------------------------------------

def _concat_raw(pieces: list[Piece], names: Iterable[str]) -> dict[str, Any]:
    """Join the raw columns of pieces: Arrow stays Arrow when every piece agrees, else Python lists."""
    columns: dict[str, Any] = {}
    for name in names:
        parts = [piece.columns.get(name) for piece in pieces]
        if all(part is None for part in parts):
            columns[name] = None
            continue
        arrow = [part for part in parts if isinstance(part, (pa.Array, pa.ChunkedArray))]
        if len(arrow) == len(parts) and len({part.type for part in arrow}) == 1:
            chunks = [c for part in arrow for c in (part.chunks if isinstance(part, pa.ChunkedArray) else [part])]
            columns[name] = pa.chunked_array(chunks, type=arrow[0].type)
            continue
        values: list[Any] = []
        for part, piece in zip(parts, pieces):
            if part is None:
                values.extend([None] * piece.count)
            elif isinstance(part, (pa.Array, pa.ChunkedArray)):
                values.extend(part.to_pylist())
            else:
                values.extend(part)
        columns[name] = values
    return columns


def _keep(columns: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    arrow_mask = pa.array(mask)
    kept: dict[str, Any] = {}
    for name, values in columns.items():
        if values is None:
            kept[name] = None
        elif isinstance(values, (pa.Array, pa.ChunkedArray)):
            kept[name] = values.filter(arrow_mask)
        else:
            kept[name] = [value for value, keep in zip(values, mask) if keep]
    return kept


def _texts(values: Any) -> np.ndarray:
    """Raw values as an object array of str/None (for the few columns filters look at)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return np.asarray(values.cast(pa.large_string()).to_pylist() if not pa.types.is_string(values.type)
                          else values.to_numpy(zero_copy_only=False), dtype=object)
    return np.asarray([None if v is None else str(v) for v in values], dtype=object)


Prepare = Callable[[dict[str, Any], int], "tuple[dict[str, Any], np.ndarray | None]"]


def _normalized(pieces: list[Piece], kinds: dict[str, str], bad: BadLines, prepare: Prepare | None) -> pa.Table:
    """One batch of raw pieces as one normalized Arrow table (rows `prepare` rejects are dropped first)."""
    count = sum(piece.count for piece in pieces)
    columns = _concat_raw(pieces, {name for piece in pieces for name in piece.columns})
    rows = schema.Rows(pieces)
    if prepare is not None:
        columns, kept = prepare(columns, count)
        if kept is not None:
            columns, rows, count = _keep(columns, kept), rows.subset(np.flatnonzero(kept)), int(kept.sum())
    return schema.normalize_columns(columns, count, kinds, rows, bad)


def _batches(pieces: Iterable[Piece], kinds: dict[str, str], bad: BadLines,
             prepare: Prepare | None = None) -> Iterator[pa.Table]:
    """Normalized tables of about BATCH_ROWS rows; a piece read by orjson is normalized on its own."""
    batch: list[Piece] = []
    rows = 0
    for piece in pieces:
        if not piece.count:
            continue
        fast = all(values is None or isinstance(values, (pa.Array, pa.ChunkedArray)) for values in piece.columns.values())
        if not fast:
            if batch:
                yield _normalized(batch, kinds, bad, prepare)
                batch, rows = [], 0
            yield _normalized([piece], kinds, bad, prepare)
            continue
        batch.append(piece)
        rows += piece.count
        if rows >= BATCH_ROWS:
            yield _normalized(batch, kinds, bad, prepare)
            batch, rows = [], 0
    if batch:
        yield _normalized(batch, kinds, bad, prepare)


Reader = Callable[[_Input, BadLines, Progress, bool], Iterable[Piece]]


def _read_ahead(items: Sequence[_Input], reader: Reader, bad: BadLines, progress: Progress) -> Iterator[Piece]:
    """Pieces of every file in order. Small files (an hourly PT1H.json) are parsed whole on two worker
    threads a few files ahead; a large one is read piece by piece here, each piece on Arrow's threads."""
    def whole(item: _Input) -> list[Piece]:
        return list(reader(item, bad, progress, False))

    small = [item.path.stat().st_size <= SMALL_FILE_BYTES for item in items]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="analytics-read") as pool:
        pending: deque[tuple[int, Future | None]] = deque()
        submitted = 0
        try:
            while submitted < len(items) or pending:
                while submitted < len(items) and len(pending) < READ_AHEAD:
                    pending.append((submitted, pool.submit(whole, items[submitted]) if small[submitted] else None))
                    submitted += 1
                index, future = pending.popleft()
                yield from future.result() if future is not None else reader(items[index], bad, progress, True)
        finally:
            for _, future in pending:
                if future is not None:
                    future.cancel()


# --- operations --------------------------------------------------------------------------------

def _operation_pieces(item: _Input, bad: BadLines, progress: Progress, threads: bool) -> Iterator[Piece]:
    advance = progress.advance(item.index, item.path)
    if item.kind == "la-csv":
        return read_csv_pieces(item.path, list(schema.OPERATIONS), bad=bad, advance=advance)
    if item.kind == "la-json":
        return read_json_pieces(item.path, LOG_ANALYTICS_FIELDS, bad=bad, advance=advance, threads=threads)
    return read_json_pieces(item.path, DIAGNOSTIC_FIELDS, envelope="records" if item.kind == "eventhub" else None,
                            bad=bad, advance=advance, threads=threads)


def _rooms_records(columns: dict[str, Any], count: int) -> tuple[dict[str, Any], np.ndarray | None]:
    """An event hub or storage folder can mix categories: keep the Rooms records (LA exports have none)."""
    category = columns.get("Category")
    if category is None:
        return columns, None
    if isinstance(category, (pa.Array, pa.ChunkedArray)):
        lower = pc.utf8_lower(category.cast(pa.large_string()))
        keep = pc.or_kleene(pc.is_null(lower), pc.equal(lower, DIAGNOSTIC_CATEGORY.lower()))
        mask = np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)
    else:
        mask = np.array([value is None or str(value).lower() == DIAGNOSTIC_CATEGORY.lower() for value in category])
    return columns, (None if mask.all() else mask)


def operations_from_pieces(pieces: Iterable[Piece], bad: BadLines | None = None) -> pd.DataFrame:
    """The operations frame from raw pieces; a bad value goes to `bad` (default: InputFormatError naming file and line)."""
    bad = bad or BadLines()
    tables = [schema.finish_operations(table)
              for table in _batches(pieces, schema.OPERATIONS, bad, _rooms_records)]
    return schema.frame_of_tables(tables, schema.OPERATIONS)


def operations_from_records(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The operations frame from Log Analytics column dicts (e.g. `read_operation_records` of app_logs)."""
    frame = pd.DataFrame.from_records(list(records))
    table = schema.normalize_columns({name: frame[name] for name in schema.OPERATIONS if name in frame},
                                     len(frame), schema.OPERATIONS)
    return schema.to_frame(schema.finish_operations(table), schema.OPERATIONS)


def drop_repeated_operations(operations: pd.DataFrame) -> pd.DataFrame:
    """One row per (CorrelationId, OperationName): the same request exported twice counts once (first kept)."""
    request, requests = pd.factorize(operations["CorrelationId"], use_na_sentinel=True)
    name = operations["OperationName"].cat.codes.to_numpy().astype(np.int64)
    key = (request.astype(np.int64) + 1) * (len(operations["OperationName"].cat.categories) + 1) + name + 1
    repeated = pd.Series(key).duplicated().to_numpy()
    return operations[~repeated].reset_index(drop=True) if repeated.any() else operations


# --- call events and call summaries -----------------------------------------------------------

def _call_events_only(columns: dict[str, Any], count: int) -> tuple[dict[str, Any], np.ndarray | None]:
    """Short event types (CallStarted, ...); other event types (validation, chat, ...) are dropped."""
    kinds = columns.get("EventType")
    if kinds is None:
        return columns, np.zeros(count, dtype=bool)
    if isinstance(kinds, (pa.Array, pa.ChunkedArray)):
        encoded = kinds.cast(pa.large_string()).dictionary_encode().combine_chunks()
        names = [CALL_EVENT_TYPES.get(value) for value in encoded.dictionary.to_pylist()]
        short = pa.array(names, pa.large_string()).take(encoded.indices)
        mask = np.asarray(short.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    else:
        short = [CALL_EVENT_TYPES.get(value) if isinstance(value, str) else None for value in kinds]
        mask = np.array([value is not None for value in short], dtype=bool)
    columns = {**columns, "EventType": short}
    return columns, (None if mask.all() else mask)


def _event_pieces(item: _Input, bad: BadLines, progress: Progress, threads: bool) -> Iterator[Piece]:
    return read_json_pieces(item.path, EVENT_FIELDS, bad=bad, advance=progress.advance(item.index, item.path),
                            threads=threads)


def fold_events(pieces: Iterable[Piece], bad: BadLines | None = None) -> CallEventFold:
    """Calling events of raw pieces folded into calls and connections (see `analytics.calling`)."""
    bad = bad or BadLines()
    fold = CallEventFold()
    for table in _batches(pieces, EVENT_KINDS, bad, _call_events_only):
        fold.add(schema.to_frame(table, EVENT_KINDS))
    return fold


def attendance_from_events(events: pd.DataFrame) -> pd.DataFrame:
    """One attendance row per participant connection, from a normalized events frame (EVENT_KINDS columns).

    A participant with no removal event leaves when the call ends; a call with no start event starts
    at its end minus its duration, or at its first join. PSTN participants never appear here (ACS
    publishes calling events for VoIP users only).
    """
    fold = CallEventFold()
    fold.add(events.assign(EventType=events["EventType"].astype("str").map(
        lambda kind: CALL_EVENT_TYPES.get(kind, kind) if isinstance(kind, str) else kind)))
    return complete_attendance(fold.calls(), fold.participants())


def complete_attendance(calls: pd.DataFrame, participants: pd.DataFrame) -> pd.DataFrame:
    """Call-level columns onto participant rows, and what can be derived filled in.

    `calls` has one row per CorrelationId; participants of calls not in it are left out, and a call
    without participants keeps one row with the participant columns empty. Rows come grouped by call.
    """
    calls = calls.reset_index(drop=True)
    for column in ("RoomId", "ServerCallId", "CallEndReason"):
        if column not in calls:
            calls[column] = None
    for column in ("CallStartTime", "CallEndTime"):
        calls[column] = (pd.to_datetime(calls[column], utc=True) if column in calls
                         else pd.Series(pd.NaT, index=calls.index, dtype=schema.TIME_DTYPE))
    codes, _ = pd.factorize(pd.concat([calls["CorrelationId"].astype("str"),
                                       participants["CorrelationId"].astype("str")], ignore_index=True))
    call_codes, of_call = codes[: len(calls)], codes[len(calls):]
    if len(pd.unique(call_codes)) != len(call_codes):
        raise ValueError("complete_attendance needs one row per call")
    # Map factorize codes to call rows, then each participant to its call's row (-1: unknown call).
    row_of_code = np.full(int(codes.max()) + 1 if len(codes) else 0, -1, dtype=np.int64)
    row_of_code[call_codes] = np.arange(len(calls))
    call_row = row_of_code[of_call] if len(of_call) else np.zeros(0, dtype=np.int64)
    known = call_row >= 0
    if not known.all():
        participants, call_row = participants[known].reset_index(drop=True), call_row[known]

    joined = pd.to_datetime(participants["ParticipantStartTime"], utc=True) if "ParticipantStartTime" in participants \
        else pd.Series(pd.NaT, index=participants.index, dtype=schema.TIME_DTYPE)
    left = pd.to_datetime(participants["ParticipantEndTime"], utc=True) if "ParticipantEndTime" in participants \
        else pd.Series(pd.NaT, index=participants.index, dtype=schema.TIME_DTYPE)
    first_join = joined.groupby(call_row).min().reindex(range(len(calls)))
    last_leave = left.groupby(call_row).max().reindex(range(len(calls)))
    duration = pd.to_timedelta(pd.to_numeric(calls.get("CallDuration"), errors="coerce"), unit="s") \
        if "CallDuration" in calls else pd.Series(pd.NaT, index=calls.index, dtype="timedelta64[ns]")
    start, end = calls["CallStartTime"], calls["CallEndTime"]
    start = start.fillna(end - duration).fillna(first_join)
    end = end.fillna(start + duration).fillna(last_leave)
    calls = calls.assign(CallStartTime=start, CallEndTime=end, CallDuration=(end - start).dt.total_seconds())

    # Participant rows with their call's columns, then one row per call that had none.
    has_people = np.zeros(len(calls), dtype=bool)
    has_people[call_row] = True
    alone = np.flatnonzero(~has_people)
    take = np.concatenate([call_row, alone])
    rows: dict[str, Any] = {}
    for column in ("CorrelationId", "ServerCallId", "RoomId"):
        # Call-level ids as categoricals straight from the calls' codes: no string is copied per row.
        codes, names = pd.factorize(calls[column].astype("str"))
        rows[column] = pd.Categorical.from_codes(codes[take], categories=pd.Index(names, dtype="str"))
    for column in ("CallStartTime", "CallEndTime", "CallDuration", "CallEndReason"):
        rows[column] = calls[column].take(take).reset_index(drop=True)
    people = participants.drop(columns=[c for c in participants.columns if c in rows])
    people = pd.concat([people, pd.DataFrame(index=range(len(alone)))], ignore_index=True) if len(alone) else people
    frame = pd.concat([pd.DataFrame(rows), people.reset_index(drop=True)], axis=1)
    if "ParticipantId" not in frame:
        frame["ParticipantId"] = None
    for column in ("ParticipantStartTime", "ParticipantEndTime"):
        frame[column] = (pd.to_datetime(frame[column], utc=True) if column in frame
                         else pd.Series(pd.NaT, index=frame.index, dtype=schema.TIME_DTYPE))
    frame["ParticipantEndTime"] = frame["ParticipantEndTime"].fillna(frame["CallEndTime"])
    frame["ParticipantDuration"] = (frame["ParticipantEndTime"] - frame["ParticipantStartTime"]).dt.total_seconds()
    if "EndpointType" not in frame:
        # Calling events exist for VoIP participants only; built as codes, not one string per row.
        frame["EndpointType"] = pd.Categorical.from_codes(np.where(frame["ParticipantId"].notna(), 0, -1),
                                                          categories=pd.Index(["VoIP"], dtype="str"))
    return schema.normalize(frame, schema.ATTENDANCE)


def attendance_from_summaries(pieces: Iterable[Piece], bad: BadLines | None = None) -> pd.DataFrame:
    """Attendance rows from ACSCallSummary records (raw or Log Analytics columns).

    Literal "null" strings count as missing; a P2P record without ParticipantId uses its EndpointId.
    Room ids are not in ACSCallSummary; `combine_attendance` fills them from calling events.
    """
    bad = bad or BadLines()
    tables = list(_batches(pieces, SUMMARY_KINDS, bad))
    summary = schema.frame_of_tables(tables, SUMMARY_KINDS)
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
    return schema.normalize(rows, schema.ATTENDANCE)


def _summary_pieces(item: _Input, bad: BadLines, progress: Progress, threads: bool) -> Iterator[Piece]:
    advance = progress.advance(item.index, item.path)
    if item.path.suffix.lower() == ".csv":
        return read_csv_pieces(item.path, [f.name for f in CALL_SUMMARY_FIELDS], bad=bad, advance=advance)
    return read_json_pieces(item.path, CALL_SUMMARY_FIELDS, envelope="records", bad=bad, advance=advance,
                            threads=threads)


def attendance_from_call_log(calls: Iterable[dict[str, Any]], participants: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Attendance rows from our call log (`shared.logs.attendance` column dicts of calls and participants)."""
    call_frame = pd.DataFrame.from_records(list(calls))
    participant_frame = pd.DataFrame.from_records(list(participants))
    if call_frame.empty and participant_frame.empty:
        return schema.empty(schema.ATTENDANCE)
    if call_frame.empty:
        call_frame = pd.DataFrame({"CorrelationId": participant_frame["CorrelationId"].unique()})
    if participant_frame.empty:
        participant_frame = pd.DataFrame(columns=["CorrelationId", "ParticipantStartTime", "ParticipantEndTime"])
    call_frame = call_frame.drop_duplicates("CorrelationId", keep="last")
    participant_frame = participant_frame.drop(columns=[c for c in ("TimeGenerated", "CallType", "RoomId", "CallStartTime")
                                                        if c in participant_frame])
    return complete_attendance(call_frame, participant_frame)


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

def _roster_rows(piece: Piece, bad: BadLines) -> tuple[dict[str, Any], int]:
    """(RoomId, RawId, Role) columns of one piece: participant pages flattened, flat rows as they are."""
    room, value, raw, role = (piece.columns.get(name) for name in ("RoomId", "Value", "RawId", "Role"))
    if all(isinstance(v, (pa.Array, pa.ChunkedArray)) for v in (room, value, raw, role)):
        value = value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value
        room = room.combine_chunks() if isinstance(room, pa.ChunkedArray) else room
        raw = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
        role = role.combine_chunks() if isinstance(role, pa.ChunkedArray) else role
        paged = np.asarray(value.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        flat = ~paged & np.asarray(raw.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        no_room = np.asarray(room.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        problems = [(np.flatnonzero(~paged & ~flat), "expected {roomId, value: [{rawId, role}]} or {RoomId, RawId, Role}"),
                    (np.flatnonzero((paged | flat) & no_room), "roster entry without a room id")]
        usable = (paged | flat) & ~no_room
        for positions, problem in problems:
            if len(positions):
                bad.report(piece.path, piece.line_of(int(positions[0])), problem, len(positions))
        pages = value.filter(pa.array(paged & usable))
        parents = pc.list_parent_indices(pages)
        entries = pc.list_flatten(pages)
        page_rooms = room.filter(pa.array(paged & usable)).take(parents)
        entry_roles = pc.coalesce(pc.struct_field(entries, "role"), pa.scalar("Attendee"))
        keep_flat = pa.array(flat & usable)
        columns = {"RoomId": pa.chunked_array([page_rooms, room.filter(keep_flat)]),
                   "RawId": pa.chunked_array([pc.struct_field(entries, "rawId"), raw.filter(keep_flat)]),
                   "Role": pa.chunked_array([entry_roles, role.filter(keep_flat)])}
        return columns, len(entries) + int((flat & usable).sum())
    rows: list[tuple[Any, Any, Any]] = []
    values = [v.to_pylist() if isinstance(v, (pa.Array, pa.ChunkedArray)) else v for v in (room, value, raw, role)]
    for index, (room_id, page, raw_id, role_name) in enumerate(zip(*values)):
        if isinstance(page, list):
            entries = [(room_id, item.get("rawId") if isinstance(item, dict) else None,
                        item.get("role", "Attendee") if isinstance(item, dict) else None) for item in page]
        elif raw_id is not None:
            entries = [(room_id, raw_id, role_name)]
        else:
            bad.report(piece.path, piece.line_of(index),
                       "expected {roomId, value: [{rawId, role}]} or {RoomId, RawId, Role}")
            continue
        if room_id is None:
            bad.report(piece.path, piece.line_of(index), "roster entry without a room id")
            continue
        rows.extend(entries)
    return {name: [row[i] for row in rows] for i, name in enumerate(schema.ROSTER)}, len(rows)


def _roster_pieces(item: _Input, bad: BadLines, progress: Progress, threads: bool) -> Iterator[Piece]:
    advance = progress.advance(item.index, item.path)
    if item.path.suffix.lower() == ".csv":
        yield from read_csv_pieces(item.path, list(schema.ROSTER), bad=bad, advance=advance)
        return
    if item.path.stat().st_size <= 1024 * 1024:
        try:  # one pretty-printed page or list of pages
            document = orjson.loads(item.path.read_bytes())
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, (dict, list)):
            records = document if isinstance(document, list) else [document]
            for record in records:
                if not isinstance(record, dict):
                    bad.report(item.path, 1, "expected a roster object")
            records = [record for record in records if isinstance(record, dict)]
            yield Piece(item.path, columns_from_records(records, _ROSTER_FIELDS), len(records), "array",
                        record_lines=[1] * len(records))
            if advance:
                advance(item.path.stat().st_size)
            return
    yield from read_json_pieces(item.path, _ROSTER_FIELDS, bad=bad, advance=advance, threads=threads)


def drop_repeated_roster(roster: pd.DataFrame, part_rows: int = 2_000_000) -> pd.DataFrame:
    """One row per (RoomId, RawId), the last kept. Users are coded per part of the rooms, so the
    codes of a large roster never need all its ids hashed at once."""
    room = roster["RoomId"].cat.codes.to_numpy().astype(np.int64) if isinstance(
        roster["RoomId"].dtype, pd.CategoricalDtype) else pd.factorize(roster["RoomId"])[0].astype(np.int64)
    repeated = np.zeros(len(roster), dtype=bool)
    parts = max(1, -(-len(roster) // part_rows))
    for part in range(parts):
        rows = np.flatnonzero(room % parts == part) if parts > 1 else np.arange(len(roster))
        person = pd.factorize(roster["RawId"].take(rows))[0].astype(np.int64)
        keys = (room[rows] + 1) * (int(person.max()) + 2 if len(person) else 1) + person + 1
        repeated[rows] = pd.Series(keys).duplicated(keep="last").to_numpy()
    return roster[~repeated].reset_index(drop=True) if repeated.any() else roster


def roster_from_pieces(pieces: Iterable[Piece], bad: BadLines | None = None) -> pd.DataFrame:
    """A roster from CSV (RoomId,RawId,Role) or JSON: Rooms API participant pages with a roomId, or flat rows.

    A record that is neither goes to `bad` (default: InputFormatError naming file and line).
    """
    bad = bad or BadLines()
    tables = []
    for piece in pieces:
        if piece.layout == "csv":
            tables.extend(_batches([piece], schema.ROSTER, bad))
            continue
        columns, count = _roster_rows(piece, bad)
        tables.append(schema.normalize_columns(columns, count, schema.ROSTER))
    return schema.frame_of_tables(tables, schema.ROSTER)


def roster_from_file(path: str | os.PathLike, bad: BadLines | None = None) -> pd.DataFrame:
    """The roster of one file (see `roster_from_pieces`)."""
    bad = bad or BadLines()
    return roster_from_pieces(_roster_pieces(_Input(Path(path), "roster", 0), bad, Progress(False), True), bad)


# --- Table storage ---------------------------------------------------------------------------

def load_table_storage(
    connection_string: str | None = None,
    *,
    account_url: str | None = None,
    credential: Any = None,
    table_prefix: str = DEFAULT_TABLE_PREFIX,
    operations_table: str | None = None,
    calls_table: str | None = None,
    participants_table: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Dataset:
    """Load our own operation and call logs from Table storage; missing tables load as empty.

    Storage is named by a connection string, or by its Table endpoint (`account_url`) read with an
    Entra token credential: `credential`, else DefaultAzureCredential (an Azure CLI or azd sign-in,
    a managed identity), which needs a data role on the account (Storage Table Data Reader).
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

    if (connection_string is None) == (account_url is None):
        raise ValueError("give a connection string or an account URL")
    if connection_string is not None:
        service = TableServiceClient.from_connection_string(connection_string)
    else:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        service = TableServiceClient(account_url, credential=credential)
    with service:
        operations = rows(service, operations_table, read_operation_records)
        calls = rows(service, calls_table, read_call_records)
        participants = rows(service, participants_table, read_participant_records)
    return Dataset(
        operations=operations_from_records(operations) if operations else schema.empty(schema.OPERATIONS),
        attendance=attendance_from_call_log(calls, participants),
        sources=[f"table storage ({operations_table}, {calls_table}, {participants_table})"],
    )


# --- everything ------------------------------------------------------------------------------

def _inputs(inputs: Iterable[str | os.PathLike], input_format: str | None) -> tuple[list[_Input], list[tuple[str, int]]]:
    """Every file of the inputs (folders searched recursively) with its format, and each input's name and size."""
    items: list[_Input] = []
    totals: list[tuple[str, int]] = []
    for index, entry in enumerate(inputs):
        path = Path(entry)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _FILE_SUFFIXES)
        elif path.exists():
            files = [path]
        else:
            raise FileNotFoundError(f"no such input: {path}")
        items.extend(_Input(file, input_format or detect_format(file), index) for file in files)
        totals.append((path.name or str(path), sum(file.stat().st_size for file in files)))
    return items, totals


def load_inputs(
    inputs: Iterable[str | os.PathLike], *, input_format: str | None = None, progress: bool = True,
    skip_bad_lines: bool = False,
) -> Dataset:
    """Load files and folders (searched recursively) into one Dataset, detecting each file's format.

    `input_format` forces one format for every file. Raises FileNotFoundError for a missing input,
    InputFormatError for a file that is unrecognizable or malformed (naming file and line), and
    ValueError for an unknown `input_format`. With `skip_bad_lines`, malformed lines and records
    with unreadable values are skipped instead, and `Dataset.skipped` says how many, per file.
    `progress` shows a bar per input (a file, or a folder of files) while it loads.
    """
    if input_format is not None and input_format not in FORMATS:
        raise ValueError(f"unknown input format {input_format!r}; expected one of {', '.join(FORMATS)}")
    bad = BadLines(skip_bad_lines)
    items, totals = _inputs(inputs, input_format)
    bars = Progress(progress)
    for index, (name, total) in enumerate(totals):
        bars.start(index, name, total)

    def of(kinds: Sequence[str]) -> list[_Input]:
        return [item for item in items if item.kind in kinds]

    try:
        # Calling events first: folding them is the largest transient, best done before the rest is held.
        attendance = []
        events = of(("eventgrid", "cloudevents"))
        if events:
            fold = fold_events(_read_ahead(events, _event_pieces, bad, bars), bad)
            attendance.append(complete_attendance(fold.calls(), fold.participants()))
            del fold
            pa.default_memory_pool().release_unused()
        summaries = of(("callsummary",))
        if summaries:
            attendance.append(attendance_from_summaries(_read_ahead(summaries, _summary_pieces, bad, bars), bad))
        rosters = [roster_from_pieces(_roster_pieces(item, bad, bars, True), bad) for item in of(("roster",))]
        operation_items = of(OPERATION_FORMATS)
        operations = (operations_from_pieces(_read_ahead(operation_items, _operation_pieces, bad, bars), bad)
                      if operation_items else schema.empty(schema.OPERATIONS))
    finally:
        bars.close()
    pa.default_memory_pool().release_unused()
    if len({(item.index, item.kind) for item in operation_items}) > 1:
        # The same request exported twice (two inputs, or two formats in one folder) counts once.
        operations = drop_repeated_operations(operations)
    if not rosters:
        roster = schema.empty(schema.ROSTER)
    else:
        roster = rosters[0] if len(rosters) == 1 else schema.normalize(pd.concat(rosters, ignore_index=True), schema.ROSTER)
        del rosters
        roster = drop_repeated_roster(roster)
    return Dataset(operations=operations, attendance=combine_attendance(attendance), roster=roster,
                   sources=[f"{item.path} ({item.kind})" for item in items], skipped=bad.summary())


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
        skipped=[s for d in datasets for s in d.skipped],
    )
