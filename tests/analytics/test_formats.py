"""Every input format loads into the same normalized frames and gives the hand-computed report figures."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from analytics import transforms as t
from analytics.loaders import detect_format, load_inputs
from analytics.schema import ATTENDANCE, OPERATIONS

from .conftest import OPERATION_INPUTS
from .scenario import raw_id


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(f"2026-11-02T{text}Z")


@pytest.mark.parametrize("name", sorted(OPERATION_INPUTS))
def test_operation_formats_give_the_hand_computed_figures(name):
    ops = load_inputs([OPERATION_INPUTS[name]], progress=False).operations
    assert list(ops.columns) == list(OPERATIONS)
    assert str(ops["TimeGenerated"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(ops["OperationName"].dtype, pd.CategoricalDtype)
    assert len(ops) == 7  # the event hub's AuthOperational record is not a Rooms record

    # Workbook tiles: 5 of 7 succeeded.
    success = t.success_rate(ops).set_index("ResultType")
    assert success["Count"].to_dict() == {"Succeeded": 5, "Failed": 2}
    assert success.loc["Succeeded", "Share"] == pytest.approx(5 / 7)
    assert t.volume_by_operation(ops).set_index("OperationName")["Count"].to_dict() == {
        "CreateRoom": 2, "GetRoom": 2, "DeleteRoom": 1, "ListRooms": 1, "UpdateParticipants": 1}
    assert t.volume_by_response_code(ops).set_index("ResultSignature")["Count"].to_dict() == {
        "200": 2, "201": 2, "204": 1, "404": 1, "500": 1}
    assert t.volume_by_version(ops).set_index("OperationVersion")["Count"].to_dict() == {
        "2024-04-15": 4, "2025-03-13": 3}

    # KQL "operation summary" per version: averages skip missing values, as avg() does.
    summary = t.version_summary(ops).set_index("OperationVersion")
    assert summary.loc["2025-03-13"].to_dict() == {
        "TotalRoomCount": 1, "AvgAddedParticipantsCount": 4.0, "AvgRemovedParticipantsCount": 1.0,
        "AvgUpsertedParticipantsCount": 2.0, "AvgRoomLifespan": 120.0, "SumPstnDialoutEnabled": 3}
    newer = summary.loc["2024-04-15"]
    assert (newer["TotalRoomCount"], newer["AvgAddedParticipantsCount"], newer["AvgRoomLifespan"],
            newer["SumPstnDialoutEnabled"]) == (2, 2.0, 60.0, 0)
    assert pd.isna(newer["AvgRemovedParticipantsCount"]) and pd.isna(newer["AvgUpsertedParticipantsCount"])
    only = t.version_summary(ops, "2025-03-13")
    assert list(only["OperationVersion"]) == ["2025-03-13"]

    # KQL "operational errors": newest first.
    errors = t.recent_errors(ops)
    assert list(zip(errors["OperationName"].astype(str), errors["ResultSignature"].astype(str))) == [
        ("ListRooms", "500"), ("GetRoom", "404")]
    assert list(errors["TimeGenerated"]) == [utc("11:15:00"), utc("10:30:00")]
    assert len(t.recent_errors(ops, limit=1)) == 1

    # KQL "result counts": OperationName asc, Count desc.
    counts = t.result_counts(ops)
    assert list(counts["OperationName"])[:3] == ["CreateRoom", "CreateRoom", "DeleteRoom"]
    assert counts["Count"].sum() == 7

    # Beyond the workbook.
    states = t.room_states(ops).set_index("RoomId")
    assert sorted(states.index) == ["R1", "R2"]  # R3 only ever failed
    assert states.loc["R1", "RoomParticipantsCount"] == 5 and states.loc["R1", "RoomParticipantsCollaborator"] == 1
    assert bool(states.loc["R2", "Deleted"]) and not bool(states.loc["R1", "Deleted"])
    assert t.pstn_share(states.reset_index()).set_index("PstnDialOut")["Rooms"].to_dict() == {
        "enabled": 1, "disabled": 1, "unknown": 0}
    assert t.role_mix(states.reset_index()).set_index("Role")["Participants"].to_dict() == {
        "Presenter": 2, "Attendee": 3, "Consumer": 1, "Collaborator": 1}
    assert t.rooms_created_over_time(ops)["RoomsCreated"].tolist() == [2]
    lifespans = t.lifespan_distribution(ops).set_index("Lifespan")["Rooms"]
    assert (lifespans["up to 1 hour"], lifespans["1 hour to 1 day"], lifespans.sum()) == (1, 1, 2)
    hot = t.error_hot_spots(ops)
    assert list(zip(hot["OperationName"], hot["ResultSignature"], hot["Hour"], hot["Failures"])) == [
        ("GetRoom", "404", utc("10:00:00"), 1), ("ListRooms", "500", utc("11:00:00"), 1)]

    drill = t.room_drill_down(ops, "R1")
    assert drill[["OperationName", "Level", "Result", "OperationDate", "OperationTime"]].values.tolist() == [
        ["UpdateParticipants", "Informational", "\u2714 200", "11/02/26", "09:10:00"],
        ["GetRoom", "Informational", "\u2714 200", "11/02/26", "09:05:00"],
        ["CreateRoom", "Informational", "\u2714 201", "11/02/26", "09:00:00"],
    ]
    assert t.room_drill_down(ops, "R3")["Result"].tolist() == ["\u2718 404"]


def test_every_operation_format_loads_to_the_same_frame():
    frames = [load_inputs([path], progress=False).operations.drop(columns=["_ResourceId", "DurationMs",
                                                                          "CallerIpAddress"])
              for path in OPERATION_INPUTS.values()]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])


def test_detects_each_format(call_inputs):
    detected = {name: detect_format(path) for name, path in OPERATION_INPUTS.items() if path.is_file()}
    detected |= {name: detect_format(path) for name, path in call_inputs.items()}
    assert detected == {
        "diagnostic": "diagnostic", "eventhub": "eventhub", "la-csv": "la-csv", "la-json": "la-json",
        "eventgrid": "eventgrid", "cloudevents": "cloudevents", "callsummary": "callsummary",
        "callsummary-csv": "callsummary", "roster": "roster", "roster-csv": "roster",
    }


@pytest.mark.parametrize("events", ["eventgrid", "cloudevents"])
@pytest.mark.parametrize("roster", ["roster", "roster-csv"])
def test_call_events_give_the_hand_computed_attendance(call_inputs, events, roster):
    data = load_inputs([call_inputs[events], call_inputs[roster]], progress=False)
    rows = data.attendance
    assert list(rows.columns) == list(ATTENDANCE)
    assert len(rows) == 6  # six VoIP connections; the duplicate delivery and validation event are ignored

    calls = t.calls(rows).set_index("CorrelationId")
    assert calls.loc["C1", ["RoomId", "CallDuration", "Connections", "Participants", "PstnParticipants"]].tolist() == [
        "R1", 3600.0, 5, 4, 0]
    assert calls.loc["C2", ["RoomId", "CallDuration", "Connections", "Participants"]].tolist() == ["R2", 900.0, 1, 1]
    assert t.calls_per_room(calls.reset_index()).set_index("RoomId")["CallMinutes"].to_dict() == {"R1": 60.0, "R2": 15.0}

    missing = t.no_shows(rows, data.roster)
    assert missing.values.tolist() == [["R1", raw_id("u4"), "Consumer"], ["R2", raw_id("u7"), "Attendee"]]
    late = t.late_joiners(rows, minutes=5)
    assert sorted(zip(late["Identifier"], late["MinutesLate"])) == [(raw_id("u3"), 15.0), (raw_id("u5"), 21.0)]
    assert len(t.late_joiners(rows, minutes=20)) == 1  # the threshold is a parameter
    early = t.early_leavers(rows, minutes=5)
    assert sorted(zip(early["Identifier"], early["MinutesEarly"])) == [(raw_id("u2"), 20.0), (raw_id("u5"), 40.0)]

    by_room = t.attendance_by_room(rows, data.roster).set_index("RoomId")
    assert by_room.loc["R1", ["RosterSize", "Attended", "NoShows", "LateJoiners", "EarlyLeavers"]].tolist() == [5, 4, 1, 2, 2]
    assert by_room.loc["R1", "AttendanceRate"] == pytest.approx(0.8)

    peaks = t.peak_concurrency(rows).set_index("CorrelationId")
    assert peaks.loc["C1", ["PeakParticipants", "PeakAt"]].tolist() == [4, utc("09:45:00")]
    assert peaks.loc["C2", ["PeakParticipants", "PeakAt"]].tolist() == [1, utc("10:05:00")]
    overall = t.overall_peak_concurrency(rows)
    assert overall.iloc[0].tolist() == [5, utc("10:05:00")]


@pytest.mark.parametrize("summary", ["callsummary", "callsummary-csv"])
def test_call_summary_adds_pstn_and_takes_rooms_from_events(call_inputs, summary):
    alone = load_inputs([call_inputs[summary]], progress=False).attendance
    assert len(alone) == 7 and alone["RoomId"].isna().all()  # ACSCallSummary has no room id
    assert alone.loc[alone["EndpointType"] == "PSTN", "Identifier"].isna().all()  # "null" is missing
    assert t.peak_concurrency(alone).set_index("CorrelationId").loc["C1", "PeakParticipants"] == 5

    both = load_inputs([call_inputs[summary], call_inputs["eventgrid"], call_inputs["roster"]], progress=False)
    rows = both.attendance
    assert len(rows) == 7 and rows["RoomId"].notna().all()
    assert rows.set_index("ParticipantId").loc["p6", "RoomId"] == "R1"
    calls = t.calls(rows).set_index("CorrelationId")
    assert calls.loc["C1", ["Participants", "PstnParticipants"]].tolist() == [5, 1]
    assert t.overall_peak_concurrency(rows).iloc[0].tolist() == [5, utc("09:45:00")]
    assert len(t.no_shows(rows, both.roster)) == 2


def test_validity_against_use(call_inputs):
    data = load_inputs([OPERATION_INPUTS["diagnostic"], call_inputs["eventgrid"]], progress=False)
    usage = t.validity_vs_usage(t.room_states(data.operations), t.calls(data.attendance)).set_index("RoomId")
    assert usage.loc["R1", ["BookedMinutes", "UsedMinutes", "Calls"]].tolist() == [120, 60.0, 1]
    assert usage.loc["R1", "UsedShare"] == pytest.approx(0.5)
    assert usage.loc["R2", "UsedShare"] == pytest.approx(0.25)


def test_event_grid_deliveries_as_json_lines_of_arrays(call_inputs, tmp_path):
    events = json.loads(call_inputs["eventgrid"].read_text())
    path = tmp_path / "deliveries.jsonl"
    path.write_text("\n".join(json.dumps([event]) for event in events) + "\n")  # one webhook body per line
    assert detect_format(path) == "eventgrid"
    rows = load_inputs([path], progress=False).attendance
    expected = load_inputs([call_inputs["eventgrid"]], progress=False).attendance
    pd.testing.assert_frame_equal(rows, expected)
