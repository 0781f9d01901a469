"""Fast record readers: JSON lines, JSON arrays, Event Hubs envelopes and CSV into columns, with file:line errors."""
from __future__ import annotations

import csv
import functools
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
from tqdm.auto import tqdm

CHUNK_BYTES = 16 * 1024 * 1024
# Files at least this large get a progress bar (when progress is on at all).
PROGRESS_MIN_BYTES = 32 * 1024 * 1024


class InputFormatError(ValueError):
    """Raised for input that cannot be read as the format it claims to be; names the file and line."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Field:
    """One output column, taken from the first of `paths` (nested keys) that has a value."""

    name: str
    paths: tuple[tuple[str, ...], ...]
    type: pa.DataType = pa.string()


@functools.lru_cache(maxsize=32)
def _schema(fields: tuple[Field, ...]) -> pa.Schema:
    """The explicit Arrow schema covering every path of `fields` (nested paths become structs)."""
    tree: dict[str, Any] = {}
    for field in fields:
        for path in field.paths:
            node = tree
            for key in path[:-1]:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise ValueError(f"path {path} crosses a leaf")
            node[path[-1]] = field.type

    def build(node: dict[str, Any]) -> list[pa.Field]:
        return [pa.field(key, pa.struct(build(value)) if isinstance(value, dict) else value)
                for key, value in node.items()]

    return pa.schema(build(tree))


def _flatten(table: pa.Table) -> pa.Table:
    while any(pa.types.is_struct(column.type) for column in table.columns):
        table = table.flatten()
    return table


def _columns_from_arrow(table: pa.Table, fields: Sequence[Field]) -> dict[str, pa.ChunkedArray]:
    import pyarrow.compute as pc

    flat = _flatten(table)
    names = set(flat.column_names)
    columns = {}
    for field in fields:
        arrays = [flat.column(".".join(path)) for path in field.paths if ".".join(path) in names]
        columns[field.name] = pc.coalesce(*arrays) if len(arrays) > 1 else arrays[0]
    return columns


def _lookup(record: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


def columns_from_records(records: Sequence[dict], fields: Sequence[Field]) -> dict[str, list]:
    """Extract `fields` from Python dicts (the slow, type-tolerant path for mixed or wrapped input)."""
    columns = {}
    for field in fields:
        if len(field.paths) == 1:
            path = field.paths[0]
            if len(path) == 1:
                key = path[0]
                columns[field.name] = [record.get(key) if isinstance(record, dict) else None for record in records]
            else:
                columns[field.name] = [_lookup(record, path) for record in records]
        else:
            values = []
            for record in records:
                value = None
                for path in field.paths:
                    value = _lookup(record, path)
                    if value is not None:
                        break
                values.append(value)
            columns[field.name] = values
    return columns


class Progress:
    """A tqdm bar over bytes for large files; does nothing when disabled or the file is small."""

    def __init__(self, path: Path, enabled: bool) -> None:
        size = path.stat().st_size
        self._bar = (
            tqdm(total=size, unit="B", unit_scale=True, desc=path.name, leave=False)
            if enabled and size >= PROGRESS_MIN_BYTES else None
        )

    def update(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _line_chunks(path: Path, progress: Progress) -> Iterator[tuple[int, bytes]]:
    """Yield (first line number, bytes) pieces of a text file, each ending at a line break."""
    line = 1
    with path.open("rb") as handle:
        rest = b""
        while True:
            block = handle.read(CHUNK_BYTES)
            progress.update(len(block))
            if not block:
                if rest.strip():
                    yield line, rest
                return
            block = rest + block
            cut = block.rfind(b"\n")
            if cut < 0:
                rest = block
                continue
            piece, rest = block[: cut + 1], block[cut + 1 :]
            yield line, piece
            line += piece.count(b"\n")


def _parse_lines(path: Path, first_line: int, piece: bytes) -> Iterator[tuple[int, Any]]:
    """Parse each non-blank line of `piece`; raises InputFormatError at the first bad one."""
    for offset, text in enumerate(piece.split(b"\n")):
        if not text.strip():
            continue
        try:
            yield first_line + offset, orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise InputFormatError(path, first_line + offset, f"not valid JSON ({error})") from None


def _unwrap(path: Path, line: int, value: Any, envelope: str | None) -> list[dict]:
    """The records inside one parsed JSON value: itself, an array's items, or an envelope's list."""
    if envelope is not None and isinstance(value, dict) and envelope in value:
        value = value[envelope]
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            raise InputFormatError(path, line, f"expected a JSON object, found {type(item).__name__}")
    return items


@dataclass
class RecordColumns:
    """Columns read from one file, with what is needed to name the line of a given record."""

    path: Path
    columns: dict[str, Any]
    count: int
    record_lines: list[int] | None  # line of each record when known cheaply; None for plain JSON lines
    layout: str  # "lines", "array" or "csv"

    def line_of(self, index: int) -> int | None:
        """1-based line of the record at `index` (0-based), found by rescanning only when needed."""
        if self.record_lines is not None:
            return self.record_lines[index]
        if self.layout == "lines":
            return _nth_non_blank_line(self.path, index)
        if self.layout == "csv":
            return index + 2  # after the header; exports put one record per line
        return _array_element_line(self.path, index)


def _nth_non_blank_line(path: Path, index: int) -> int | None:
    seen = -1
    with path.open("rb") as handle:
        for number, text in enumerate(handle, start=1):
            if text.strip():
                seen += 1
                if seen == index:
                    return number
    return None


def _array_element_line(path: Path, index: int) -> int | None:
    text = path.read_text(encoding="utf-8-sig")
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    for current in range(index + 1):
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if current == index:
            return text.count("\n", 0, position) + 1
        _, position = decoder.raw_decode(text, position)
    return None


def read_json_columns(
    path: str | os.PathLike, fields: Sequence[Field], *, envelope: str | None = None, progress: bool = True
) -> RecordColumns:
    """Read a JSON file of records into the columns named by `fields`.

    Accepts JSON lines (one object, array or `envelope` wrapper per line) and a single JSON array
    or wrapper. JSON lines of plain objects go through Arrow's parser block by block; anything
    Arrow refuses (mixed types, wrappers) is parsed with orjson. Raises InputFormatError naming the
    file and line of invalid JSON or a non-object record, and OSError if the file cannot be read.
    """
    path = Path(path)
    # An empty file is checked by size first so that nothing is opened for it.
    layout, envelope = _json_layout(path, envelope) if path.stat().st_size else ("empty", envelope)
    if layout == "empty":
        return RecordColumns(path, columns_from_records([], fields), 0, [], "lines")
    if layout == "document":
        return _read_json_document(path, fields, envelope)
    return _read_json_lines(path, fields, envelope, progress)


def _json_layout(path: Path, envelope: str | None) -> tuple[str, str | None]:
    """How to read a JSON file, decided from one read of its head: ("empty", "document" or "lines", envelope).

    The envelope comes back as None for JSON lines whose first line is a plain record (so Arrow can
    take them). Raises InputFormatError when the file does not start like JSON.
    """
    with path.open("rb") as handle:
        head = handle.read(4096)
        # Only the first 4 KiB are looked at: a file blank that far counts as empty.
        first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        if not first:
            return "empty", envelope
        if first == b"[":
            return "document", envelope
        if envelope is not None:
            # Only with an envelope does the first line matter; it may run past the head, so finish it.
            cut = head.find(b"\n")
            first_line = head[: cut + 1] if cut >= 0 else head + handle.readline()
    value = None
    if envelope is not None:
        try:
            value = orjson.loads(first_line)
        except orjson.JSONDecodeError:
            # One JSON value spread over several lines (not JSON lines); a file that is not JSON at
            # all fails when read whole, naming the line the parser stopped at.
            return "document", envelope
    if first != b"{":
        raise InputFormatError(path, 1, f"expected JSON, found {first.decode(errors='replace')!r}")
    return "lines", envelope if isinstance(value, dict) and envelope in value else None


def _read_json_document(path: Path, fields: Sequence[Field], envelope: str | None) -> RecordColumns:
    data = path.read_bytes()
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if data.lstrip()[:1] == b"[" and _looks_like_lines(data):
            return _read_json_lines(path, fields, envelope, progress=False)
        line = data.count(b"\n", 0, error.pos) + 1
        raise InputFormatError(path, line, f"not valid JSON ({error.msg})") from None
    records = _unwrap(path, 1, value, envelope)
    # Record lines are found on demand by rescanning the array (see RecordColumns.line_of).
    return RecordColumns(path, columns_from_records(records, fields), len(records), None, "array")


def _looks_like_lines(data: bytes) -> bool:
    first_line = data.lstrip().split(b"\n", 1)[0]
    try:
        orjson.loads(first_line)
        return True
    except orjson.JSONDecodeError:
        return False


def _read_json_lines(path: Path, fields: Sequence[Field], envelope: str | None, progress: bool) -> RecordColumns:
    schema = _schema(tuple(fields))
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    bar = Progress(path, progress)
    pieces: list[dict[str, Any]] = []
    lines: list[int] = []
    exact_lines = True  # stays True while every record is one object on its own line
    count = 0
    try:
        for first_line, piece in _line_chunks(path, bar):
            table = None
            if envelope is None:
                try:
                    table = pajson.read_json(io.BytesIO(piece), parse_options=options)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    table = None  # mixed types, arrays per line or bad JSON: let orjson decide
            if table is not None:
                pieces.append(_columns_from_arrow(table, fields))
                count += table.num_rows
                continue
            records, record_lines = [], []
            for line, value in _parse_lines(path, first_line, piece):
                items = _unwrap(path, line, value, envelope)
                if len(items) != 1 or items[0] is not value:
                    exact_lines = False
                records.extend(items)
                record_lines.extend([line] * len(items))
            pieces.append(columns_from_records(records, fields))
            lines.extend(record_lines)
            count += len(records)
    finally:
        bar.close()
    columns = {field.name: concat_columns([piece[field.name] for piece in pieces]) for field in fields}
    return RecordColumns(path, columns, count, None if exact_lines else lines, "lines")


def concat_columns(parts: list[Any]) -> Any:
    """Join column pieces: Arrow pieces stay Arrow, any Python list makes the whole a list."""
    if not parts:
        return []
    if all(isinstance(part, (pa.ChunkedArray, pa.Array)) for part in parts):
        chunks = []
        for part in parts:
            chunks.extend(part.chunks if isinstance(part, pa.ChunkedArray) else [part])
        types = {chunk.type for chunk in chunks}
        if len(types) == 1:
            return pa.chunked_array(chunks)
    values: list[Any] = []
    for part in parts:
        values.extend(part.to_pylist() if isinstance(part, (pa.ChunkedArray, pa.Array)) else part)
    return values


def read_csv_columns(path: str | os.PathLike, wanted: Sequence[str]) -> RecordColumns:
    """Read a CSV export as strings, keeping the `wanted` columns that exist (others become empty).

    Raises InputFormatError naming the line of a row with the wrong number of fields.
    """
    path = Path(path)
    names = csv_header(path)
    options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names}, strings_can_be_null=True,
        null_values=[""], include_columns=[name for name in names if name in set(wanted)],
    )
    try:
        table = pacsv.read_csv(path, convert_options=options)
    except pa.ArrowInvalid as error:
        raise InputFormatError(path, _bad_csv_line(path), f"malformed CSV ({error})") from None
    columns = {name: table.column(name) if name in table.column_names else None for name in wanted}
    return RecordColumns(path, columns, table.num_rows, None, "csv")


def csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def _bad_csv_line(path: Path) -> int | None:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        width = len(next(reader, []))
        for row in reader:
            if len(row) != width:
                return reader.line_num
    return None


def to_frame(columns: dict[str, Any], count: int) -> pd.DataFrame:
    """A DataFrame of raw columns (Arrow arrays or Python lists; None means a missing column)."""
    data = {}
    for name, values in columns.items():
        if values is None:
            data[name] = pd.Series([None] * count, dtype=object)
        elif isinstance(values, (pa.ChunkedArray, pa.Array)):
            data[name] = values.to_pandas()
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data, index=pd.RangeIndex(count))
