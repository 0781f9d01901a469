"""The normalized frames (operations, attendance, roster): column kinds and the coercion every loader ends with."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .app_logs import LOG_ANALYTICS_TABLE
from .readers import InputFormatError, RecordColumns, concat_columns, to_frame

# Column kinds: "time" UTC timestamps, "str" free text, "cat" low-cardinality categoricals,
# "int" nullable Int64, "float" float64 (NaN for missing), "bool" nullable boolean.
OPERATIONS: dict[str, str] = {
    "TimeGenerated": "time",
    "CorrelationId": "str",
    "Level": "cat",
    "OperationName": "cat",
    "OperationVersion": "cat",
    "ResultType": "cat",
    "ResultSignature": "cat",
    "RoomId": "str",
    "RoomLifespan": "int",
    "AddedRoomParticipantsCount": "int",
    "UpsertedRoomParticipantsCount": "int",
    "RemovedRoomParticipantsCount": "int",
    "RoomParticipantsCount": "int",
    "RoomParticipantsPresenter": "int",
    "RoomParticipantsAttendee": "int",
    "RoomParticipantsConsumer": "int",
    "PstnDialOutEnabled": "bool",
    "DurationMs": "float",
    "CallerIpAddress": "cat",
    "_ResourceId": "cat",
    "Type": "cat",
}

# One row per participant connection to a call, ACSCallSummary-style, with call-level columns repeated.
ATTENDANCE: dict[str, str] = {
    "CorrelationId": "str",
    "ServerCallId": "str",
    "RoomId": "str",
    "CallStartTime": "time",
    "CallEndTime": "time",
    "CallDuration": "float",
    "CallEndReason": "cat",
    "ParticipantId": "str",
    "Identifier": "str",
    "Role": "cat",
    "EndpointType": "cat",
    "ParticipantStartTime": "time",
    "ParticipantEndTime": "time",
    "ParticipantDuration": "float",
    "ParticipantEndReason": "cat",
}

ROSTER: dict[str, str] = {"RoomId": "str", "RawId": "str", "Role": "cat"}

# Literal strings that mean "no value" in ACS exports (call summary samples carry "null").
_MISSING_TEXT = ("", "null", "NULL", "None")
LA_TIME_FORMAT = "%m/%d/%Y, %I:%M:%S.%f %p"  # Log Analytics UI export, e.g. "5/25/2023, 4:32:49.469 AM"
TIME_DTYPE = "datetime64[ns, UTC]"

Locate = Callable[[int], str]


def empty(kinds: Mapping[str, str]) -> pd.DataFrame:
    """A typed frame with no rows."""
    return normalize(pd.DataFrame({name: pd.Series([], dtype=object) for name in kinds}), kinds)


def _missing(series: pd.Series) -> pd.Series:
    mask = series.isna()
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        mask |= series.isin(_MISSING_TEXT)
    return mask.astype(bool)


def _fail(series: pd.Series, bad: pd.Series, name: str, what: str, locate: Locate | None) -> None:
    index = int(np.flatnonzero(bad.to_numpy())[0])
    value = series.iloc[index]
    where = locate(index) if locate else f"row {index + 1}"
    raise InputFormatError(where, None, f"{name} = {value!r} is not {what}")


def to_time(series: pd.Series, name: str = "time", locate: Locate | None = None) -> pd.Series:
    """Parse ISO 8601 or Log Analytics "M/D/YYYY, h:mm:ss.fff AM" text (or datetimes) to UTC timestamps.

    Raises InputFormatError (via `locate`) for a value that is neither.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype(TIME_DTYPE)
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series.dt.tz_localize("UTC").astype(TIME_DTYPE)
    missing = _missing(series)
    if series.dtype != object:
        try:  # Arrow parses clean ISO 8601 (7 fractional digits, Z) far faster than pandas
            parsed = pc.cast(pa.array(series.where(~missing, None)), pa.timestamp("ns", tz="UTC"))
            return pd.Series(parsed.to_pandas(), index=series.index).astype(TIME_DTYPE)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
    values = series.where(~missing, None)
    if values.dtype == object and values.map(lambda v: hasattr(v, "tzinfo")).all():
        parsed = pd.to_datetime(values, utc=True, errors="coerce")
    else:
        text = values.astype("string")
        parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        retry = parsed.isna() & ~missing
        if retry.any():
            parsed = parsed.astype(TIME_DTYPE)
            parsed[retry] = pd.to_datetime(text[retry], format=LA_TIME_FORMAT, utc=True, errors="coerce")
    parsed = parsed.astype(TIME_DTYPE)
    bad = parsed.isna() & ~missing
    if bad.any():
        _fail(series, bad, name, "a date-time (ISO 8601 or M/D/YYYY, h:mm:ss.fff AM)", locate)
    return parsed


def _to_number(series: pd.Series, name: str, locate: Locate | None) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series
    missing = _missing(series)
    numbers = pd.to_numeric(series.where(~missing, None), errors="coerce")
    bad = numbers.isna() & ~missing
    if bad.any():
        _fail(series, bad, name, "a number", locate)
    return numbers


def _to_bool(series: pd.Series, name: str, locate: Locate | None) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean")
    missing = _missing(series)
    text = series.where(~missing, None).astype("string").str.strip().str.lower()
    mapped = text.map({"true": True, "false": False, "1": True, "0": False}, na_action="ignore")
    bad = mapped.isna() & ~missing
    if bad.any():
        _fail(series, bad, name, "true or false", locate)
    return mapped.astype("boolean")


def _to_text(series: pd.Series, categorical: bool) -> pd.Series:
    missing = _missing(series)
    if series.dtype == object:
        # Numbers in text columns (ResultSignature 201 vs "201") become their plain text.
        series = series.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else v, na_action="ignore")
    text = series.astype("string").where(~missing, None)
    return text.astype("category") if categorical else text.astype("str")


def normalize(frame: pd.DataFrame, kinds: Mapping[str, str], locate: Locate | None = None) -> pd.DataFrame:
    """Give `frame` exactly the `kinds` columns, typed; missing columns become all-missing.

    Never mutates `frame`. Raises InputFormatError (via `locate`) for values of the wrong kind.
    """
    count = len(frame)
    out = {}
    for name, kind in kinds.items():
        series = frame[name] if name in frame.columns else pd.Series([None] * count, dtype=object, index=frame.index)
        if kind == "time":
            out[name] = to_time(series, name, locate)
        elif kind == "int":
            out[name] = _to_number(series, name, locate).round().astype("Int64")
        elif kind == "float":
            out[name] = _to_number(series, name, locate).astype("float64")
        elif kind == "bool":
            out[name] = _to_bool(series, name, locate)
        else:
            out[name] = _to_text(series, categorical=kind == "cat")
    return pd.DataFrame(out, index=pd.RangeIndex(count))


def read_frame(reads: list[RecordColumns]) -> tuple[pd.DataFrame, Locate]:
    """Concatenate raw reads into one frame, with a locator naming the file and line of any row."""
    # Join the raw columns before converting, so a folder of many small files converts once.
    names = list(dict.fromkeys(name for read in reads for name in read.columns))
    columns = {name: concat_columns([read.columns.get(name) if read.columns.get(name) is not None else [None] * read.count
                              for read in reads]) for name in names}
    frame = to_frame(columns, sum(read.count for read in reads))
    starts = np.cumsum([0] + [read.count for read in reads])

    def locate(index: int) -> str:
        piece = int(np.searchsorted(starts, index, side="right")) - 1
        read = reads[piece]
        line = read.line_of(index - int(starts[piece]))
        return f"{read.path}:{line}" if line is not None else f"{read.path} (record {index - starts[piece] + 1})"

    return frame, locate


def finish_operations(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill the derivable operation columns: ResultType from the status, Type constant."""
    out = frame.copy()
    status = pd.to_numeric(out["ResultSignature"].astype("string"), errors="coerce")
    derived = pd.Series(np.where(status < 400, "Succeeded", "Failed"), index=out.index).where(status.notna())
    out["ResultType"] = out["ResultType"].astype("string").fillna(derived).astype("category")
    out["Type"] = pd.Categorical([LOG_ANALYTICS_TABLE] * len(out))
    return out
