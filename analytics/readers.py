"""Record readers: JSON lines, JSON documents, Event Hubs envelopes and CSV, piece by piece, into Arrow columns.

A file is read as a sequence of `Piece`s: a whole small file, or about `CHUNK_BYTES` of a large one
cut at a line break, so memory stays bounded however large the input. JSON lines of plain records
go through pyarrow's multithreaded JSON reader with an explicit schema; a piece Arrow refuses (a
malformed line, mixed types, one array or envelope per line) is parsed line by line with orjson,
which names the bad line. CSV goes through pyarrow's streaming CSV reader. What happens to a
malformed line is up to a `BadLines` policy: stop with an InputFormatError naming file and line
(the default), or skip it and count it per file.
"""
from __future__ import annotations

import csv
import functools
import json
import mmap
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson

CHUNK_BYTES = 32 * 1024 * 1024  # a piece of a large JSON-lines file
ARROW_BLOCK_BYTES = 4 * 1024 * 1024  # Arrow's parse blocks inside a piece: its threads take one each
CSV_BLOCK_BYTES = 16 * 1024 * 1024
_SCAN_BYTES = 16 * 1024 * 1024

Advance = Callable[[int], None]  # progress: called with the bytes just read


class InputFormatError(ValueError):
    """Raised for input that cannot be read as the format it claims to be; names the file and line."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass
class Skipped:
    """Malformed lines skipped in one file: how many, and the first one."""

    lines: int = 0
    first_line: int | None = None
    first_problem: str = ""


class BadLines:
    """What to do with a malformed line or value: raise InputFormatError (default) or skip and count it per file."""

    def __init__(self, skip: bool = False) -> None:
        self.skip = skip
        self.files: dict[str, Skipped] = {}

    def report(self, path: str | os.PathLike, line: int | None, problem: str, lines: int = 1) -> None:
        """One malformed line (or `lines` of them, the first at `line`); raises unless skipping."""
        if not self.skip:
            raise InputFormatError(path, line, problem)
        entry = self.files.setdefault(str(path), Skipped())
        if entry.lines == 0 or (line is not None and entry.first_line is not None and line < entry.first_line):
            entry.first_line, entry.first_problem = line, problem
        entry.lines += lines

    def summary(self) -> list[str]:
        """One line per file with skipped lines, for the report and the command line."""
        return [f"skipped {entry.lines:,} malformed line(s) in {path}"
                + (f" (first at line {entry.first_line}: {entry.first_problem})" if entry.first_line else
                   f" ({entry.first_problem})")
                for path, entry in sorted(self.files.items())]


@dataclass(frozen=True)
class Field:
    """One output column, taken from the first of `paths` (nested keys) that has a value."""

    name: str
    paths: tuple[tuple[str, ...], ...]
    type: pa.DataType = pa.string()


@functools.lru_cache(maxsize=32)
def arrow_schema(fields: tuple[Field, ...]) -> pa.Schema:
    """The explicit Arrow schema covering every path of `fields` (nested paths become structs)."""
    tree: dict[str, Any] = {}
    for item in fields:
        for path in item.paths:
            node = tree
            for key in path[:-1]:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise ValueError(f"path {path} crosses a leaf")
            node[path[-1]] = item.type

    def build(node: dict[str, Any]) -> list[pa.Field]:
        return [pa.field(key, pa.struct(build(value)) if isinstance(value, dict) else value)
                for key, value in node.items()]

    return pa.schema(build(tree))


@dataclass
class Piece:
    """Records read from one file, or from one part of a large one: raw columns, and where each record is.

    `columns` maps every field name to an Arrow array (typed by the field) or to a list of Python
    values (the orjson path), or None when a CSV has no such column.
    """

    path: Path
    columns: dict[str, Any]
    count: int
    layout: str  # "lines", "array" or "csv"
    start: int = 0  # lines: byte offset of the piece in the file; csv: index of its first row
    record_lines: list[int] | None = None  # the line of each record, when the reader knew it cheaply
    _first_line: int | None = field(default=None, repr=False)

    def line_of(self, index: int) -> int | None:
        """1-based line of the record at `index` (0-based) of this piece, rescanning the file only if needed."""
        if self.record_lines is not None:
            return self.record_lines[index]
        if self.layout == "csv":
            return self.start + index + 2  # after the header; exports put one record per line
        if self.layout == "array":
            return _array_element_line(self.path, index)
        return _nth_non_blank_line(self.path, self.start, index)


def columns_from_records(records: Sequence[Any], fields: Sequence[Field]) -> dict[str, list]:
    """Extract `fields` from Python dicts (the slow, type-tolerant path for mixed or wrapped input)."""
    columns = {}
    for item in fields:
        if len(item.paths) == 1 and len(item.paths[0]) == 1:
            key = item.paths[0][0]
            columns[item.name] = [record.get(key) if isinstance(record, dict) else None for record in records]
            continue
        values = []
        for record in records:
            value = None
            for path in item.paths:
                value = _lookup(record, path)
                if value is not None:
                    break
            values.append(value)
        columns[item.name] = values
    return columns


def _lookup(record: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


def _columns_from_arrow(table: pa.Table, fields: Sequence[Field]) -> dict[str, Any]:
    import pyarrow.compute as pc

    columns = {}
    for item in fields:
        arrays = []
        for path in item.paths:
            array: Any = table.column(path[0])
            for key in path[1:]:
                array = pc.struct_field(array, key)
            arrays.append(array)
        columns[item.name] = pc.coalesce(*arrays) if len(arrays) > 1 else arrays[0]
    return columns


# --- line numbers, found only when an error needs one -------------------------------------------

def _count_lines(path: Path, end: int) -> int:
    """Line breaks in the first `end` bytes of the file."""
    count = 0
    with path.open("rb") as handle:
        while end > 0:
            block = handle.read(min(_SCAN_BYTES, end))
            if not block:
                break
            count += block.count(b"\n")
            end -= len(block)
    return count


def _nth_non_blank_line(path: Path, start: int, index: int) -> int | None:
    number = _count_lines(path, start)
    seen = -1
    with path.open("rb") as handle:
        handle.seek(start)
        for number, text in enumerate(handle, start=number + 1):
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


# --- JSON ------------------------------------------------------------------------------------

def read_json_pieces(
    path: str | os.PathLike, fields: Sequence[Field], *, envelope: str | None = None,
    bad: BadLines | None = None, advance: Advance | None = None, threads: bool = True,
) -> Iterator[Piece]:
    """Read a JSON file of records as pieces of columns named by `fields`.

    Accepts JSON lines (one object, array or `envelope` wrapper per line) and a single JSON array or
    wrapper. Invalid JSON and records that are not objects go to `bad` (default: raise
    InputFormatError naming file and line); a document that does not parse at all always raises.
    `threads` lets Arrow parse a piece on several threads. Raises OSError if the file cannot be read.
    """
    path = Path(path)
    bad = bad or BadLines()
    size = path.stat().st_size
    # An empty file is checked by size first so that nothing is opened for it.
    layout, envelope = _json_layout(path, envelope) if size else ("empty", envelope)
    if layout == "empty":
        if advance:
            advance(size)
        return
    if layout == "document":
        piece = _read_json_document(path, fields, envelope, bad)
        if advance:
            advance(size)
        if piece is not None:
            yield piece
            return
        # A document that is really JSON lines of arrays: read as lines below.
    yield from _read_json_lines(path, size, fields, envelope, bad, advance, threads)


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


def _read_json_document(path: Path, fields: Sequence[Field], envelope: str | None, bad: BadLines) -> Piece | None:
    """One JSON document as one piece; None when it is JSON lines after all (of arrays, say)."""
    data = path.read_bytes()
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if data.lstrip()[:1] == b"[" and _looks_like_lines(data):
            return None
        line = data.count(b"\n", 0, error.pos) + 1
        raise InputFormatError(path, line, f"not valid JSON ({error.msg})") from None
    records = _records(path, 1, value, envelope, bad)
    # Record lines are found on demand by rescanning the array (see Piece.line_of).
    return Piece(path, columns_from_records(records, fields), len(records), "array")


def _looks_like_lines(data: bytes) -> bool:
    first_line = data.lstrip().split(b"\n", 1)[0]
    try:
        orjson.loads(first_line)
        return True
    except orjson.JSONDecodeError:
        return False


def _records(path: Path, line: int, value: Any, envelope: str | None, bad: BadLines) -> list[dict]:
    """The records inside one parsed JSON value (itself, an array's items, an envelope's list); others to `bad`."""
    if envelope is not None and isinstance(value, dict) and envelope in value:
        value = value[envelope]
    items = value if isinstance(value, list) else [value]
    records = [item for item in items if isinstance(item, dict)]
    if len(records) < len(items):
        other = next(item for item in items if not isinstance(item, dict))
        bad.report(path, line, f"expected a JSON object, found {type(other).__name__}")
    return records


class _Source:
    """The bytes of one file: read whole when small, else memory-mapped, with pages dropped once read."""

    def __init__(self, path: Path, size: int) -> None:
        self.size = size
        self._handle = None
        self._map: mmap.mmap | None = None
        if size <= CHUNK_BYTES:
            self._data: Any = path.read_bytes()
        else:
            self._handle = path.open("rb")
            self._map = mmap.mmap(self._handle.fileno(), 0, access=mmap.ACCESS_READ)
            self._data = self._map
        self.buffer = pa.py_buffer(self._data)

    def find(self, needle: bytes, start: int) -> int:
        return self._data.find(needle, start)

    def rfind(self, needle: bytes, start: int, end: int) -> int:
        return self._data.rfind(needle, start, end)

    def bytes(self, start: int, end: int) -> bytes:
        return self._data[start:end]

    def count_lines(self, start: int, end: int) -> int:
        """Line breaks in [start, end), a block at a time."""
        total = 0
        for position in range(start, end, _SCAN_BYTES):
            total += self._data[position:min(end, position + _SCAN_BYTES)].count(b"\n")
        return total

    def done_with(self, start: int, end: int) -> None:
        """Let the kernel drop pages already parsed, so resident memory does not grow with the file."""
        if self._map is not None and hasattr(mmap, "MADV_DONTNEED"):
            begin = start - start % mmap.PAGESIZE
            self._map.madvise(mmap.MADV_DONTNEED, begin, end - begin)

    def close(self) -> None:
        self.buffer = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a view is still alive somewhere; the map goes with it
                pass
            self._handle.close()


def _cuts(source: _Source) -> Iterator[tuple[int, int]]:
    """(start, end) byte ranges of about CHUNK_BYTES, each ending just after a line break (or at the end)."""
    start = 0
    while start < source.size:
        end = start + CHUNK_BYTES
        if end >= source.size:
            end = source.size
        else:
            cut = source.rfind(b"\n", start, end)
            if cut < 0:  # one line longer than a chunk: take it whole
                cut = source.find(b"\n", end)
                cut = source.size - 1 if cut < 0 else cut
            end = cut + 1
        yield start, end
        start = end


def _read_json_lines(path: Path, size: int, fields: Sequence[Field], envelope: str | None, bad: BadLines,
                     advance: Advance | None, threads: bool) -> Iterator[Piece]:
    schema = arrow_schema(tuple(fields))
    parse = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    read = pajson.ReadOptions(block_size=ARROW_BLOCK_BYTES, use_threads=threads)
    source = _Source(path, size)
    lines_before = (0, 0)  # (byte offset, line breaks before it): counted only when the orjson path needs it
    try:
        for start, end in _cuts(source):
            piece = None
            if envelope is None:
                try:
                    table = pajson.read_json(pa.BufferReader(source.buffer.slice(start, end - start)),
                                             read_options=read, parse_options=parse)
                    piece = Piece(path, _columns_from_arrow(table, fields), table.num_rows, "lines", start)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    piece = None  # malformed line, mixed types, arrays per line: orjson decides, line by line
            if piece is None:
                offset, count = lines_before
                count += source.count_lines(offset, start)
                lines_before = (start, count)
                piece = _parse_lines(path, count + 1, source.bytes(start, end), fields, envelope, bad)
            source.done_with(start, end)
            if advance:
                advance(end - start)
            yield piece
    finally:
        source.close()


def _parse_lines(path: Path, first_line: int, data: bytes, fields: Sequence[Field], envelope: str | None,
                 bad: BadLines) -> Piece:
    """Parse each non-blank line with orjson; a bad line goes to `bad`, every record keeps its line."""
    records: list[dict] = []
    lines: list[int] = []
    for number, text in enumerate(data.split(b"\n"), start=first_line):
        if not text.strip():
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            bad.report(path, number, f"not valid JSON ({error})")
            continue
        items = _records(path, number, value, envelope, bad)
        records.extend(items)
        lines.extend([number] * len(items))
    return Piece(path, columns_from_records(records, fields), len(records), "lines", record_lines=lines)


# --- CSV -------------------------------------------------------------------------------------

def csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def read_csv_pieces(path: str | os.PathLike, wanted: Sequence[str], *, bad: BadLines | None = None,
                    advance: Advance | None = None) -> Iterator[Piece]:
    """Read a CSV export as strings, in pieces, keeping the `wanted` columns that exist (others are None).

    A row with the wrong number of fields goes to `bad` (default: raise InputFormatError naming its line).
    """
    path = Path(path)
    bad = bad or BadLines()
    names = csv_header(path)
    present = [name for name in names if name in set(wanted)]

    invalid_rows: list[Any] = []

    def invalid(row: Any) -> str:
        if not bad.skip:
            return "error"
        invalid_rows.append(row)
        return "skip"

    options = pacsv.ConvertOptions(column_types={name: pa.string() for name in names}, strings_can_be_null=True,
                                   null_values=[""], include_columns=present)
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                                parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
                                convert_options=options)
        rows = 0
        for batch in reader:
            columns = {name: batch.column(name) if name in present else None for name in wanted}
            yield Piece(path, columns, batch.num_rows, "csv", rows)
            rows += batch.num_rows
    except pa.ArrowInvalid as error:
        raise InputFormatError(path, _bad_csv_line(path), f"malformed CSV ({error})") from None
    if invalid_rows:
        row = invalid_rows[0]
        line = row.number if row.number and row.number > 0 else _bad_csv_line(path)  # the streaming reader may not know
        bad.report(path, line, f"malformed CSV ({row.actual_columns} fields where the header has {row.expected_columns})",
                   len(invalid_rows))
    if advance:
        advance(path.stat().st_size)


def _bad_csv_line(path: Path) -> int | None:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        width = len(next(reader, []))
        for row in reader:
            if len(row) != width:
                return reader.line_num
    return None
