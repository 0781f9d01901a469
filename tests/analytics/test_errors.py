"""Malformed input fails with a clear error naming the file and the line."""
from __future__ import annotations

import re

import pytest

from analytics.loaders import detect_format, load_inputs
from analytics.readers import InputFormatError

from .conftest import DATA

GOOD = (DATA / "ops.diagnostic.jsonl").read_text().splitlines()


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def failure(path, **options) -> InputFormatError:
    with pytest.raises(InputFormatError) as caught:
        load_inputs([path], progress=False, **options)
    return caught.value


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = write(tmp_path, "broken.jsonl", "\n".join(GOOD[:3] + ['{"time": "2026-11-02T09:00:00Z", oops}'] + GOOD[3:]))
    error = failure(path, input_format="diagnostic")
    assert (error.path, error.line) == (str(path), 4)
    assert str(error).startswith(f"{path}:4: not valid JSON")


def test_bad_timestamp_names_the_line_past_blank_lines(tmp_path):
    lines = list(GOOD)  # line 3 of the fixture is blank
    lines[5] = lines[5].replace("2026-11-02T10:30:00.0000000Z", "yesterday")
    path = write(tmp_path, "badtime.jsonl", "\n".join(lines))
    message = str(failure(path))
    assert message.startswith(f"{path}:6: ") and "TimeGenerated = 'yesterday'" in message


def test_bad_value_in_a_json_array_names_its_line(tmp_path):
    text = (DATA / "ops.la.json").read_text().replace('"RoomLifespan": 60, "AddedRoomParticipantsCount": 2',
                                                     '"RoomLifespan": "sixty", "AddedRoomParticipantsCount": 2')
    path = write(tmp_path, "bad.json", text)
    message = str(failure(path))
    assert message.startswith(f"{path}:5: ") and "RoomLifespan = 'sixty' is not a number" in message


def test_bad_csv_row_names_its_line(tmp_path):
    lines = (DATA / "ops.la.csv").read_text().splitlines()
    lines[3] = lines[3] + ",extra,fields"
    error = failure(write(tmp_path, "bad.csv", "\n".join(lines) + "\n"))
    assert error.line == 4 and "malformed CSV" in str(error)


def test_bad_boolean_in_csv_names_its_line(tmp_path):
    text = (DATA / "ops.la.csv").read_text().replace(",false,ACS", ",maybe,ACS")
    path = write(tmp_path, "bool.csv", text)
    assert re.match(rf"{re.escape(str(path))}:5: PstnDialOutEnabled = 'maybe' is not true or false", str(failure(path)))


def test_unknown_content_is_refused(tmp_path):
    with pytest.raises(InputFormatError, match=r"notlogs\.jsonl:1: the first record matches no known"):
        detect_format(write(tmp_path, "notlogs.jsonl", '{"hello": "world"}\n'))
    with pytest.raises(InputFormatError, match=r"header matches no known export"):
        detect_format(write(tmp_path, "other.csv", "a,b\n1,2\n"))
    with pytest.raises(InputFormatError, match=r"garbage\.json:1: not JSON"):
        detect_format(write(tmp_path, "garbage.json", "this is not json\n"))


def test_non_object_record_names_its_line(tmp_path):
    path = write(tmp_path, "mixed.jsonl", GOOD[0] + "\n42\n")
    error = failure(path, input_format="diagnostic")
    assert error.line == 2 and "expected a JSON object" in str(error)


def test_event_hub_envelope_with_bad_json_names_its_line(tmp_path):
    lines = (DATA / "ops.eventhub.json").read_text().splitlines()
    path = write(tmp_path, "hub.json", lines[0] + "\n" + lines[1][:-5] + "\n")
    assert failure(path, input_format="eventhub").line == 2


def test_missing_input_and_unknown_format_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_inputs([tmp_path / "nope.json"], progress=False)
    with pytest.raises(ValueError, match="unknown input format"):
        load_inputs([DATA / "ops.la.csv"], input_format="xml", progress=False)
