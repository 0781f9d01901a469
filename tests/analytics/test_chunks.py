"""Large inputs are read in pieces and folded incrementally: the same frames as one pass, bad lines named or skipped.

The piece and batch sizes are shrunk so that a few hundred lines make dozens of pieces, and the
large-file path (memory-mapped, Arrow on several threads) is taken for files of a few KiB.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from analytics import loaders, readers
from analytics import transforms as t
from analytics.cli import main
from analytics.loaders import load_inputs
from analytics.readers import InputFormatError
from analytics.simulate import simulate, write_formats

from .conftest import DATA


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chunks")
    write_formats(simulate(seed=5, rooms=40, days=2), folder, ["diagnostic", "eventgrid", "la-csv", "roster"], seed=5)
    return folder


def small_pieces(monkeypatch, chunk: int = 16384, batch: int = 200) -> None:
    monkeypatch.setattr(readers, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(loaders, "BATCH_ROWS", batch)
    monkeypatch.setattr(loaders, "SMALL_FILE_BYTES", 1024)


def inputs(folder):
    return [folder / "insights-logs-roomsoperational", folder / "eventgrid-calls.jsonl", folder / "rooms-participants.jsonl"]


def test_pieces_and_folds_give_the_same_frames_as_one_pass(simulated, monkeypatch):
    whole = load_inputs(inputs(simulated), progress=False)
    events = simulated / "eventgrid-calls.jsonl"
    assert events.stat().st_size > 20 * 16384  # over twenty pieces below
    small_pieces(monkeypatch)
    pieces = load_inputs(inputs(simulated), progress=False)
    assert len(pieces.attendance) > 100 and len(pieces.operations) > 200
    pd.testing.assert_frame_equal(pieces.operations, whole.operations)
    pd.testing.assert_frame_equal(pieces.roster, whole.roster)
    # Connections may come in another (deterministic) order; every value is the same.
    keys = ["CorrelationId", "ParticipantId", "Identifier"]
    pd.testing.assert_frame_equal(pieces.attendance.sort_values(keys, ignore_index=True),
                                  whole.attendance.sort_values(keys, ignore_index=True))
    pd.testing.assert_frame_equal(t.calls(pieces.attendance), t.calls(whole.attendance))
    pd.testing.assert_frame_equal(t.peak_concurrency(pieces.attendance), t.peak_concurrency(whole.attendance))


def test_a_connection_split_across_pieces_folds_into_one_row(tmp_path, monkeypatch):
    """Join in one piece, leave (and a redelivered join) in a later one: one row, first join, last leave."""
    def event(kind, time, **data):
        return {"id": f"{kind}-{time}", "eventType": f"Microsoft.Communication.{kind}", "eventTime": f"2026-11-02T{time}Z",
                "data": {"correlationId": "C", "serverCallId": "S", "room": {"id": "R"}, **data}}
    user = {"user": {"communicationIdentifier": {"rawId": "8:acs:u"}, "role": "Attendee"}, "participantId": "p"}
    lines = [event("CallStarted", "09:00:00")]
    lines += [event("CallParticipantAdded", "09:01:00", **user)]
    lines += [event("CallStarted", f"09:0{n}:30", padding="x" * 300) for n in range(2, 9)]  # filler pieces
    lines += [event("CallParticipantAdded", "09:01:00", **user), event("CallParticipantRemoved", "09:30:00", **user),
              event("CallEnded", "09:31:00", callDurationInSeconds=1860.0)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    small_pieces(monkeypatch, chunk=600, batch=1)
    rows = load_inputs([path], progress=False).attendance
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["ParticipantId"], row["Identifier"], row["Role"]) == ("p", "8:acs:u", "Attendee")
    assert (row["ParticipantStartTime"], row["ParticipantEndTime"]) == (
        pd.Timestamp("2026-11-02T09:01:00Z"), pd.Timestamp("2026-11-02T09:30:00Z"))
    assert (row["CallStartTime"], row["CallEndTime"], row["CallDuration"]) == (
        pd.Timestamp("2026-11-02T09:00:00Z"), pd.Timestamp("2026-11-02T09:31:00Z"), 1860.0)


def corrupt(path, line_number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line_number - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def copy(simulated, tmp_path):
    def make(name):
        target = tmp_path / name
        target.write_bytes((simulated / name).read_bytes())
        return target
    return make


@pytest.mark.parametrize("chunked", [False, True])
def test_a_malformed_line_deep_in_a_large_file_names_file_and_line(copy, monkeypatch, chunked):
    events = copy("eventgrid-calls.jsonl")
    total = len(events.read_text().splitlines())
    corrupt(events, total - 3, '{"eventType": "Microsoft.Communication.CallEnded", oops')
    if chunked:
        small_pieces(monkeypatch)
    with pytest.raises(InputFormatError) as caught:
        load_inputs([events], progress=False)
    assert (caught.value.path, caught.value.line) == (str(events), total - 3)
    assert "not valid JSON" in str(caught.value)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_bad_value_deep_in_a_large_file_names_file_and_line(copy, monkeypatch, chunked):
    events = copy("eventgrid-calls.jsonl")
    lines = events.read_text().splitlines()
    number = len(lines) - 10
    record = json.loads(lines[number - 1])
    record["eventTime"] = "the day after"
    corrupt(events, number, json.dumps(record))
    if chunked:
        small_pieces(monkeypatch)
    with pytest.raises(InputFormatError) as caught:
        load_inputs([events], progress=False)
    assert str(caught.value).startswith(f"{events}:{number}: EventTime = 'the day after' is not a date-time")


def test_skipping_bad_lines_counts_them_per_file_and_keeps_the_rest(copy, simulated, monkeypatch, tmp_path):
    events, ops = copy("eventgrid-calls.jsonl"), copy("ACSRoomsIncomingOperations.csv")
    total = len(events.read_text().splitlines())
    corrupt(events, 5, "not json at all")
    corrupt(events, total - 3, "{broken")
    csv_lines = ops.read_text().splitlines()
    corrupt(ops, 7, csv_lines[6] + ",one,too,many")
    small_pieces(monkeypatch)
    with pytest.raises(InputFormatError):
        load_inputs([events, ops], progress=False)
    data = load_inputs([events, ops], progress=False, skip_bad_lines=True)
    assert len(data.skipped) == 2  # by file name
    assert data.skipped[0].startswith(f"skipped 1 malformed line(s) in {ops} (first at line 7: malformed CSV")
    assert data.skipped[1].startswith(f"skipped 2 malformed line(s) in {events} (first at line 5: not valid JSON")
    clean = load_inputs([simulated / "eventgrid-calls.jsonl", simulated / "ACSRoomsIncomingOperations.csv"],
                        progress=False)
    assert len(data.operations) == len(clean.operations) - 1
    assert len(t.calls(data.attendance)) == len(t.calls(clean.attendance))


def test_skipping_a_bad_value_drops_its_record_and_says_where(tmp_path):
    lines = (DATA / "ops.diagnostic.jsonl").read_text().splitlines()
    lines[5] = lines[5].replace("2026-11-02T10:30:00.0000000Z", "yesterday")
    path = tmp_path / "ops.jsonl"
    path.write_text("\n".join(lines) + "\n")
    data = load_inputs([path], progress=False, skip_bad_lines=True)
    assert len(data.operations) == 6
    assert data.skipped == [f"skipped 1 malformed line(s) in {path} (first at line 6: TimeGenerated = 'yesterday' "
                            "is not a date-time (ISO 8601 or M/D/YYYY, h:mm:ss.fff AM))"]


def test_the_cli_stops_by_default_and_skips_with_the_flag(tmp_path, capsys):
    lines = (DATA / "ops.diagnostic.jsonl").read_text().splitlines()
    lines.insert(4, '{"time": oops}')
    path = tmp_path / "ops.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert main(["report", str(path), "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    assert f"error: {path}:5: not valid JSON" in capsys.readouterr().err
    assert main(["report", str(path), "--out", str(tmp_path / "b"), "--no-progress", "--skip-bad-lines"]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipped 1 malformed line(s) in {path} (first at line 5" in err and "7 operations" in err
    html = (tmp_path / "b" / "report.html").read_text()
    assert "Malformed input skipped" in html and "skipped 1 malformed line(s)" in html
