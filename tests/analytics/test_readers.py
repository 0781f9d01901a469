"""How read_json_pieces tells apart empty files, JSON lines, envelopes and single documents from a file's head."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from analytics.loaders import DIAGNOSTIC_FIELDS, load_inputs
from analytics.readers import InputFormatError, read_json_pieces

from .conftest import DATA

CAPTURE = DATA / "ops.eventhub.json"  # Event Hubs capture: one {"records": [...]} envelope per line


def capture_records() -> list[dict]:
    return [record for line in CAPTURE.read_text().splitlines() for record in json.loads(line)["records"]]


def operations(path, input_format=None):
    return load_inputs([path], input_format=input_format, progress=False).operations


@pytest.mark.parametrize("text", ["", "\n \t\r\n", "\ufeff", " " * 5000 + '{"time": "after the head"}\n'])
@pytest.mark.parametrize("envelope", [None, "records"])
def test_files_blank_through_the_head_have_no_records(tmp_path, text, envelope):
    path = tmp_path / "blank.json"
    path.write_text(text, encoding="utf-8")
    assert list(read_json_pieces(path, DIAGNOSTIC_FIELDS, envelope=envelope)) == []


def test_a_pretty_printed_capture_is_read_as_one_document(tmp_path):
    records = capture_records()
    path = tmp_path / "capture.json"
    path.write_text(json.dumps({"records": records}, indent=2))
    [read] = read_json_pieces(path, DIAGNOSTIC_FIELDS, envelope="records")
    assert (read.layout, read.count) == ("array", len(records))
    pd.testing.assert_frame_equal(operations(path), operations(CAPTURE))


def test_an_envelope_line_longer_than_the_head_is_still_an_envelope(tmp_path):
    records = capture_records()
    padded = [{**record, "padding": "x" * 5000} for record in records]
    path = tmp_path / "capture.json"
    path.write_text(json.dumps({"records": padded}) + "\n")
    [read] = read_json_pieces(path, DIAGNOSTIC_FIELDS, envelope="records")
    assert (read.layout, read.count, read.record_lines) == ("lines", len(records), [1] * len(records))
    pd.testing.assert_frame_equal(operations(path, "eventhub"), operations(CAPTURE))


@pytest.mark.parametrize(("input_format", "text", "problem"), [
    ("diagnostic", "this is not json\n", "1: expected JSON, found 't'"),
    ("diagnostic", "42\n", "1: expected JSON, found '4'"),
    ("eventhub", "42\n", "1: expected JSON, found '4'"),
    # With an envelope a first line that does not parse may be a pretty-printed document: the
    # whole file is parsed and the error names where that stopped.
    ("eventhub", "\n\nthis is not json\n", "3: not valid JSON ("),
])
def test_files_that_do_not_start_like_json_are_refused(tmp_path, input_format, text, problem):
    path = tmp_path / "odd.json"
    path.write_text(text)
    with pytest.raises(InputFormatError) as caught:
        operations(path, input_format)
    assert str(caught.value).startswith(f"{path}:{problem}")
