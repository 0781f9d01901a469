"""The simulator is deterministic for a seed and writes every format the loaders read back alike."""
from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from analytics import transforms as t
from analytics.cli import main
from analytics.loaders import load_inputs
from analytics.simulate import SIMULATION_FORMATS, simulate, write_formats


def digest(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    for run in ("a", "b"):
        assert main(["simulate", "--seed", "7", "--rooms", "40", "--days", "3", "--out", str(tmp_path / run),
                     "--format", "all"]) == 0
    assert main(["simulate", "--seed", "8", "--rooms", "40", "--days", "3", "--out", str(tmp_path / "c"),
                 "--format", "all"]) == 0
    first = digest(tmp_path / "a")
    assert first == digest(tmp_path / "b")
    assert first != digest(tmp_path / "c")
    assert len(first) > 8


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    simulation = simulate(seed=3, rooms=120, days=4)
    write_formats(simulation, folder, SIMULATION_FORMATS, seed=3)
    return simulation, folder


def test_every_operation_format_reads_back_the_same_operations(simulated):
    simulation, folder = simulated
    frames = {}
    for pattern in ("insights-logs-roomsoperational", "eventhub-roomsoperational.jsonl",
                    "ACSRoomsIncomingOperations.csv", "ACSRoomsIncomingOperations.json"):
        ops = load_inputs([folder / pattern], progress=False).operations
        frames[pattern] = ops.sort_values("CorrelationId", ignore_index=True)
    assert {len(f) for f in frames.values()} == {len(simulation.operations)}
    reference = frames.pop("insights-logs-roomsoperational")
    for name, frame in frames.items():
        columns = ["CorrelationId", "OperationName", "OperationVersion", "ResultType", "ResultSignature", "RoomId",
                   "RoomLifespan", "RoomParticipantsCount", "PstnDialOutEnabled"]
        pd.testing.assert_frame_equal(frame[columns], reference[columns], obj=name)
        # the Log Analytics UI time format keeps milliseconds only
        assert (frame["TimeGenerated"] - reference["TimeGenerated"]).abs().max() < pd.Timedelta(milliseconds=1)


def test_simulation_is_realistic(simulated):
    simulation, folder = simulated
    data = load_inputs([folder / "insights-logs-roomsoperational", folder / "eventgrid-calls.jsonl",
                        folder / "insights-logs-callsummary", folder / "rooms-participants.jsonl"], progress=False)
    ops = data.operations
    failed = ops[ops["ResultType"] == "Failed"]
    assert 0.02 < len(failed) / len(ops) < 0.15
    assert failed["ResultSignature"].astype(str).str.startswith("4").any()
    assert failed["ResultSignature"].astype(str).str.startswith("5").any()
    assert set(ops["OperationName"].astype(str)) == {"CreateRoom", "GetRoom", "UpdateRoom", "DeleteRoom", "ListRooms",
                                                   "GetParticipants", "UpdateParticipants"}
    assert "Collaborator" in set(data.roster["Role"].astype(str))
    assert (data.attendance["EndpointType"] == "PSTN").any()
    assert len(t.no_shows(data.attendance, data.roster)) > 0
    assert len(t.late_joiners(data.attendance)) > 0 and len(t.early_leavers(data.attendance)) > 0
    calls = t.calls(data.attendance)
    assert len(calls) == len(simulation.calls) and calls["RoomId"].notna().all()


def test_limit_caps_lines(tmp_path):
    simulation = simulate(seed=1, rooms=30, days=2)
    files = write_formats(simulation, tmp_path, ["eventgrid", "eventhub"], seed=1, limit=50)
    events = (tmp_path / "eventgrid-calls.jsonl").read_text().splitlines()
    assert len(events) == 50 and len(files) == 2
    with pytest.raises(ValueError, match="unknown format"):
        write_formats(simulation, tmp_path, ["xml"], seed=1)
