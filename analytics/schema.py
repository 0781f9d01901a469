"""The normalized frames (operations, attendance, roster): column kinds, and the coercion every loader ends with.

Raw columns (Arrow arrays from the readers, Python lists from the orjson path, or pandas Series)
become typed Arrow columns piece by piece (`normalize_columns`), and a table of those becomes the
pandas frame (`to_frame`). Clean Arrow input stays in Arrow compute; anything else (text numbers,
Log Analytics UI times, mixed types) goes through pandas, which also finds the bad values.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .app_logs import LOG_ANALYTICS_TABLE
from .readers import BadLines, InputFormatError, Piece

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
    "RoomId": "cat",  # a room has several operations: each id is stored once
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

# One row per participant connection to a call, ACSCallSummary-style, with call-level columns repeated
# (so the call's ids are categoricals: each id is stored once per call, not once per row).
ATTENDANCE: dict[str, str] = {
    "CorrelationId": "cat",
    "ServerCallId": "cat",
    "RoomId": "cat",
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

ROSTER: dict[str, str] = {"RoomId": "cat", "RawId": "str", "Role": "cat"}

# Literal strings that mean "no value" in ACS exports (call summary samples carry "null").
_MISSING_TEXT = ("", "null", "NULL", "None")
_MISSING = pa.array(_MISSING_TEXT, pa.large_string())
LA_TIME_FORMAT = "%m/%d/%Y, %I:%M:%S.%f %p"  # Log Analytics UI export, e.g. "5/25/2023, 4:32:49.469 AM"
TIME_DTYPE = "datetime64[ns, UTC]"
ARROW_TYPES = {"time": pa.timestamp("ns", tz="UTC"), "str": pa.large_string(),
               "cat": pa.dictionary(pa.int32(), pa.large_string()), "int": pa.int64(), "float": pa.float64(),
               "bool": pa.bool_()}
_WHAT = {"time": "a date-time (ISO 8601 or M/D/YYYY, h:mm:ss.fff AM)", "int": "a number", "float": "a number",
         "bool": "true or false"}
_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


@dataclass
class Rows:
    """Where each row of a batch of pieces came from, to name the file and line of a bad value."""

    pieces: list[Piece]
    kept: np.ndarray | None = None  # row -> row of the pieces before a filter

    def __post_init__(self) -> None:
        self._starts = np.cumsum([0] + [piece.count for piece in self.pieces])

    def _piece(self, index: int) -> tuple[Piece, int]:
        if self.kept is not None:
            index = int(self.kept[index])
        number = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self.pieces[number], index - int(self._starts[number])

    def where(self, index: int) -> tuple[str, int | None]:
        piece, offset = self._piece(index)
        return str(piece.path), piece.line_of(offset)

    def by_file(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The given row numbers grouped by the file they came from (in order)."""
        original = rows if self.kept is None else self.kept[rows]
        numbers = np.searchsorted(self._starts, original, side="right") - 1
        groups: dict[str, list[np.ndarray]] = {}
        for number in np.unique(numbers):
            groups.setdefault(str(self.pieces[number].path), []).append(rows[numbers == number])
        return {path: np.concatenate(parts) for path, parts in groups.items()}

    def subset(self, kept: np.ndarray) -> Rows:
        rows = Rows(self.pieces, kept if self.kept is None else self.kept[kept])
        return rows


def empty(kinds: Mapping[str, str]) -> pd.DataFrame:
    """A typed frame with no rows."""
    return to_frame(pa.table({name: pa.array([], ARROW_TYPES[kind]) for name, kind in kinds.items()}), kinds)


# --- Arrow fast paths --------------------------------------------------------------------------

def _as_arrow(values: Any) -> pa.ChunkedArray | None:
    """`values` as Arrow when they are Arrow already or a typed (non-object) pandas Series; else None."""
    if isinstance(values, pa.ChunkedArray):
        return values
    if isinstance(values, pa.Array):
        return pa.chunked_array([values])
    if isinstance(values, pd.Series) and values.dtype != object:
        try:
            array = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return None
        return array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    return None


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _text(array: pa.ChunkedArray) -> pa.ChunkedArray:
    """String or dictionary-of-string Arrow values as large strings, with the missing-value literals as null."""
    if pa.types.is_dictionary(array.type):
        array = array.cast(pa.large_string())
    elif not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    if array.null_count < len(array):
        missing = pc.is_in(array, value_set=_MISSING)
        if pc.any(missing).as_py():
            array = pc.if_else(missing, pa.scalar(None, pa.large_string()), array)
    return array


def _clean_dictionary(array: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary column with missing-value literals as nulls, its indices kept as they are."""
    chunks = []
    for chunk in array.chunks:
        dictionary = chunk.dictionary.cast(pa.large_string())
        indices = chunk.indices.cast(pa.int32())
        missing = pc.is_in(dictionary, value_set=_MISSING)
        if len(dictionary) and pc.any(missing).as_py():
            indices = pc.if_else(pc.take(missing, indices), pa.scalar(None, pa.int32()), indices)
        chunks.append(pa.DictionaryArray.from_arrays(indices, dictionary))
    return pa.chunked_array(chunks, type=ARROW_TYPES["cat"])


def _arrow_column(array: pa.ChunkedArray, kind: str) -> tuple[pa.ChunkedArray | None, pa.ChunkedArray | None]:
    """(typed column, bad mask) through Arrow compute, or (None, None) when pandas must decide."""
    source = array.type
    if pa.types.is_null(source):
        return pa.nulls(len(array), ARROW_TYPES[kind]), None
    text = _is_text(source) or (pa.types.is_dictionary(source) and _is_text(source.value_type))
    try:
        if kind == "cat" and pa.types.is_dictionary(source):
            return _clean_dictionary(array), None  # only the dictionary's values are looked at
        if kind in ("str", "cat"):
            if not text:
                return None, None  # numbers in text columns: pandas writes them as the exports do
            values = _text(array)
            return (values.dictionary_encode() if kind == "cat" else values), None
        if kind == "time":
            if pa.types.is_timestamp(source):
                typed = array.cast(pa.timestamp(source.unit, tz=source.tz or "UTC"))
                return typed.cast(ARROW_TYPES["time"]), None
            if not text:
                return None, None
            return _text(array).cast(ARROW_TYPES["time"]), None
        if kind in ("int", "float"):
            if text:
                array = _text(array)
                try:
                    return array.cast(ARROW_TYPES[kind]), None
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    array = array.cast(pa.float64())  # "1.0" or "2.6" in an integer column
            if pa.types.is_integer(array.type):
                return array.cast(ARROW_TYPES[kind]), None
            if pa.types.is_floating(array.type):
                return (pc.round(array).cast(pa.int64()) if kind == "int" else array.cast(pa.float64())), None
            return None, None
        if kind == "bool":
            if pa.types.is_boolean(source):
                return array, None
            if not text:
                return None, None
            words = pc.utf8_lower(pc.utf8_trim_whitespace(_text(array)))
            true = pc.is_in(words, value_set=pa.array(["true", "1"]))
            false = pc.is_in(words, value_set=pa.array(["false", "0"]))
            values = pc.if_else(true, True, pc.if_else(false, False, pa.scalar(None, pa.bool_())))
            bad = pc.and_(pc.is_valid(words), pc.invert(pc.or_(true, false)))
            return values, bad
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None, None
    return None, None


# --- pandas paths (anything Arrow does not take as it is) --------------------------------------

def _series(values: Any, count: int) -> pd.Series:
    if values is None:
        return pd.Series([None] * count, dtype=object)
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return pd.Series(values.to_pylist(), dtype=object)
    return pd.Series(values, dtype=object)


def _missing(series: pd.Series) -> pd.Series:
    mask = series.isna()
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        mask |= series.isin(_MISSING_TEXT)
    return mask.astype(bool)


def to_time(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse ISO 8601 or Log Analytics "M/D/YYYY, h:mm:ss.fff AM" text (or datetimes) to UTC timestamps.

    Returns the timestamps and the mask of values that are neither.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype(TIME_DTYPE), pd.Series(False, index=series.index)
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series.dt.tz_localize("UTC").astype(TIME_DTYPE), pd.Series(False, index=series.index)
    missing = _missing(series)
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
    return parsed, parsed.isna() & ~missing


def _to_number(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series, pd.Series(False, index=series.index)
    missing = _missing(series)
    numbers = pd.to_numeric(series.where(~missing, None), errors="coerce")
    return numbers, numbers.isna() & ~missing


def _to_bool(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean"), pd.Series(False, index=series.index)
    missing = _missing(series)
    text = series.where(~missing, None).astype("string").str.strip().str.lower()
    mapped = text.map({"true": True, "false": False, "1": True, "0": False}, na_action="ignore")
    return mapped.astype("boolean"), mapped.isna() & ~missing


def _to_text(series: pd.Series) -> pd.Series:
    missing = _missing(series)
    if series.dtype == object:
        # Numbers in text columns (ResultSignature 201 vs "201") become their plain text.
        series = series.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else v, na_action="ignore")
    return series.astype("string").where(~missing, None).astype("str")


def _pandas_column(series: pd.Series, kind: str) -> tuple[pa.Array, np.ndarray | None]:
    """(typed Arrow column, bad mask or None) through pandas coercion."""
    bad = None
    if kind == "time":
        values, bad = to_time(series)
    elif kind in ("int", "float"):
        values, bad = _to_number(series)
        values = values.round().astype("Int64") if kind == "int" else values.astype("float64")
    elif kind == "bool":
        values, bad = _to_bool(series)
    else:
        values = _to_text(series)
    array = pa.array(values, type=ARROW_TYPES[kind] if kind != "cat" else pa.large_string(), from_pandas=True)
    if kind == "cat":
        array = array.dictionary_encode()
    return array, (bad.to_numpy(dtype=bool) if bad is not None and bad.any() else None)


# --- the one normalizer ------------------------------------------------------------------------

def normalize_columns(columns: Mapping[str, Any], count: int, kinds: Mapping[str, str], rows: Rows | None = None,
                      bad: BadLines | None = None) -> pa.Table:
    """Typed Arrow columns, exactly `kinds`, from raw ones; missing columns become all-missing.

    A value of the wrong kind goes to `bad` with the file and line `rows` names (default: raise
    InputFormatError; "row N" without `rows`). Skipped values drop their whole row.
    """
    bad = bad or BadLines()
    out: dict[str, Any] = {}
    dropped: np.ndarray | None = None
    for name, kind in kinds.items():
        values = columns.get(name)
        typed, mask = (None, None)
        arrow = _as_arrow(values) if values is not None else None
        if values is None:
            typed = pa.nulls(count, ARROW_TYPES[kind])
        elif arrow is not None:
            typed, mask = _arrow_column(arrow, kind)
        if typed is None:
            typed, mask = _pandas_column(_series(values, count), kind)
        if mask is not None:
            flags = mask.to_numpy(zero_copy_only=False) if isinstance(mask, (pa.Array, pa.ChunkedArray)) else mask
            flags = np.asarray(flags, dtype=bool)
            if flags.any():
                _report_values(name, kind, values, flags, rows, bad)
                dropped = flags if dropped is None else dropped | flags
        out[name] = typed
    table = pa.table({name: out[name] for name in kinds})
    if dropped is not None:
        table = table.filter(pa.array(~dropped))
    return table


def _value(values: Any, index: int) -> Any:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values[index].as_py()
    if isinstance(values, pd.Series):
        return values.iloc[index]
    return values[index]


def _report_values(name: str, kind: str, values: Any, flags: np.ndarray, rows: Rows | None, bad: BadLines) -> None:
    positions = np.flatnonzero(flags)
    first = int(positions[0])
    problem = f"{name} = {_value(values, first)!r} is not {_WHAT[kind]}"
    if rows is None:
        raise InputFormatError(f"row {first + 1}", None, problem)
    if not bad.skip:
        path, line = rows.where(first)
        raise InputFormatError(path, line, problem)
    for path, indexes in rows.by_file(positions).items():
        index = int(indexes[0])
        bad.report(path, rows.where(index)[1], f"{name} = {_value(values, index)!r} is not {_WHAT[kind]}",
                   len(indexes))


def to_frame(table: pa.Table, kinds: Mapping[str, str]) -> pd.DataFrame:
    """The pandas frame of a normalized table: Int64, boolean, UTC datetimes, str, sorted categories.

    Consumes `table` (Arrow buffers are released column by column as they convert).
    """
    frame = table.to_pandas(types_mapper=_PANDAS_TYPES.get, self_destruct=True, split_blocks=True)
    del table
    pa.default_memory_pool().release_unused()
    for name, kind in kinds.items():
        if kind == "cat":
            frame[name] = tidy_categories(frame[name])
        elif kind == "time" and str(frame[name].dtype) != TIME_DTYPE:
            frame[name] = frame[name].astype(TIME_DTYPE)
        elif kind == "str" and frame[name].dtype == object:  # an all-null column
            frame[name] = frame[name].astype("str")
    return frame


def tidy_categories(series: pd.Series) -> pd.Series:
    """Only the categories in use, sorted, whatever order the pieces met them in (as astype("category") gives)."""
    categories = series.cat.categories
    codes = series.cat.codes.to_numpy()
    used = np.bincount(codes[codes >= 0], minlength=len(categories)) > 0
    keep = categories[used].astype("str")
    ordered = keep.sort_values()
    if len(keep) == len(categories) and (ordered == categories).all():
        return series
    return series.cat.set_categories(ordered)


def frame_of_tables(tables: list[pa.Table], kinds: Mapping[str, str]) -> pd.DataFrame:
    """The pandas frame of normalized pieces (their dictionaries may differ: the conversion unifies them).

    Empties `tables`: the pieces' buffers are released column by column as they convert, so the
    Arrow and pandas copies of a column are never both held for the whole frame.
    """
    if not tables:
        return empty(kinds)
    table = pa.concat_tables(tables)
    tables.clear()
    return to_frame(table, kinds)


def normalize(frame: pd.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    """Give `frame` exactly the `kinds` columns, typed; missing columns become all-missing.

    Never mutates `frame`. Raises InputFormatError ("row N") for values of the wrong kind.
    """
    columns = {name: frame[name] for name in kinds if name in frame.columns}
    return to_frame(normalize_columns(columns, len(frame), kinds), kinds)


# --- operations --------------------------------------------------------------------------------

def finish_operations(table: pa.Table) -> pa.Table:
    """Fill the derivable operation columns of a normalized table: ResultType from the status, Type constant."""
    result = table.column("ResultType")
    if result.null_count:
        status = table.column("ResultSignature").cast(pa.large_string())
        numbers = pc.cast(pc.if_else(pc.match_substring_regex(status, r"^\s*\d+\s*$"), status,
                                     pa.scalar(None, pa.large_string())), pa.int64())
        derived = pc.if_else(pc.less(numbers, 400), "Succeeded", "Failed").cast(pa.large_string())
        result = pc.coalesce(result.cast(pa.large_string()), derived).dictionary_encode()
        table = table.set_column(table.schema.get_field_index("ResultType"), "ResultType", result)
    constant = pa.DictionaryArray.from_arrays(pa.array(np.zeros(table.num_rows, dtype=np.int32)),
                                              pa.array([LOG_ANALYTICS_TABLE], pa.large_string()))
    return table.set_column(table.schema.get_field_index("Type"), "Type", constant)
