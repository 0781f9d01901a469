"""Our own logs written by the Table writers load, through Azurite, into the same frames as ACS exports."""
from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from analytics import transforms as t
from analytics.cli import main
from analytics.app_logs import (CallParticipantRecord, RoomCallRecord, RoomsOperationRecord, TableCallLog,
                                TableOperationLog)
from analytics.loaders import load_inputs, load_table_storage

from . import scenario
from .azurite import azurite_tables
from .conftest import OPERATION_INPUTS


@pytest.fixture(scope="module")
def connection_string(starts_processes):
    with azurite_tables() as value:
        yield value


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-02T{text}+00:00")


def test_table_logs_load_like_the_exports(connection_string, call_inputs, tmp_path):
    exported = load_inputs([OPERATION_INPUTS["la-json"]], progress=False).operations
    log = TableOperationLog(connection_string)
    for row in exported.to_dict("records"):
        room = {key: (None if pd.isna(value) else value) for key, value in row.items()}
        log.write(RoomsOperationRecord(
            time_generated=room["TimeGenerated"].to_pydatetime(), correlation_id=room["CorrelationId"],
            operation_name=room["OperationName"], operation_version=room["OperationVersion"],
            result_signature=int(room["ResultSignature"]), duration_ms=5.0, room_id=room["RoomId"],
            room_lifespan_minutes=room["RoomLifespan"], added_participants=room["AddedRoomParticipantsCount"],
            upserted_participants=room["UpsertedRoomParticipantsCount"],
            removed_participants=room["RemovedRoomParticipantsCount"], participants_count=room["RoomParticipantsCount"],
            presenters=room["RoomParticipantsPresenter"], attendees=room["RoomParticipantsAttendee"],
            consumers=room["RoomParticipantsConsumer"], pstn_dial_out_enabled=room["PstnDialOutEnabled"]))
    calls = TableCallLog(connection_string)
    starts = {call_id: (room, at(start), at(end)) for call_id, room, _, start, end in scenario.CALLS}
    for call_id, (room, start, end) in starts.items():
        calls.write(RoomCallRecord(call_id=call_id, room_id=room, started_at=start, ended_at=end, end_reason="CallEnded"))
    for call_id, participant, user, role, join, leave, endpoint in scenario.CONNECTIONS:
        calls.write(CallParticipantRecord(call_id=call_id, participant_id=participant, identifier=scenario.raw_id(user),
                                          room_id=starts[call_id][0], joined_at=at(join), left_at=at(leave),
                                          role=role, endpoint_type=endpoint, call_started_at=starts[call_id][1]))
    assert log.close(30) and calls.close(30)

    stored = load_table_storage(connection_string)
    ours = stored.operations.sort_values("TimeGenerated", ignore_index=True)
    columns = [c for c in ours.columns if c not in ("DurationMs", "_ResourceId", "CallerIpAddress")]
    pd.testing.assert_frame_equal(ours[columns], exported.sort_values("TimeGenerated", ignore_index=True)[columns])

    rows = stored.attendance
    assert len(rows) == 7 and rows["RoomId"].notna().all()
    peaks = t.peak_concurrency(rows).set_index("CorrelationId")
    assert peaks.loc["C1", "PeakParticipants"] == 5  # the PSTN guest is in our call log
    roster = load_inputs([call_inputs["roster"]], progress=False).roster
    assert len(t.no_shows(rows, roster)) == 2

    window = load_table_storage(connection_string, since=at("10:00:00"), until=at("11:16:00"))
    assert sorted(window.operations["CorrelationId"].str[-2:]) == ["a4", "a5", "a6"]

    out = tmp_path / "report"
    assert main(["report", "--connection-string", connection_string, str(call_inputs["roster"]), "--out", str(out),
                 "--no-progress"]) == 0
    assert pd.read_csv(out / "tables" / "success_rate.csv").set_index("ResultType")["Count"].to_dict() == {
        "Succeeded": 5, "Failed": 2}


def test_missing_tables_load_as_empty(connection_string):
    data = load_table_storage(connection_string, operations_table="nosuchops", calls_table="nosuchcalls",
                              participants_table="nosuchparts")
    assert data.operations.empty and data.attendance.empty


def test_a_live_call_without_ends_loads_with_empty_end_times():
    from analytics.loaders import attendance_from_call_log

    start = at("09:00:00")
    rows = attendance_from_call_log(
        [{"CorrelationId": "live", "RoomId": "r1", "CallStartTime": start}],
        [{"CorrelationId": "live", "ParticipantId": "p1", "Identifier": "8:acs:u1", "ParticipantStartTime": start}],
    )
    assert len(rows) == 1 and rows["RoomId"].iloc[0] == "r1"
    assert rows["CallEndTime"].isna().all() and rows["ParticipantEndTime"].isna().all()
    assert t.peak_concurrency(rows)["PeakParticipants"].tolist() == [1]


def test_the_report_reads_the_tables_with_an_entra_identity(starts_processes, monkeypatch, tmp_path):
    """`--account-url`: the Table endpoint with DefaultAzureCredential, here finding localdev's
    managed identity endpoint as it finds Azure's, on Azurite in OAuth mode."""
    from localdev.azurite import AzuriteTable
    from localdev.certs import ensure_dev_certificate
    from localdev.identity import STORAGE_RESOURCE, ManagedIdentityEndpoint
    from tests.conftest import TEST_CERT_DIR

    with AzuriteTable(certificate=ensure_dev_certificate(TEST_CERT_DIR), oauth=True) as azurite, ManagedIdentityEndpoint() as identity:
        log = TableOperationLog(azurite.connection_string)
        for index, (name, status) in enumerate([("CreateRoom", 201), ("GetRoom", 200), ("GetRoom", 404)]):
            log.write(RoomsOperationRecord(
                time_generated=at(f"10:0{index}:00"), correlation_id=f"c{index}", operation_name=name,
                operation_version="2024-04-15", result_signature=status, duration_ms=5.0, room_id="r1"))
        assert log.close(30)
        for name, value in identity.environment().items():
            monkeypatch.setenv(name, value)
        out = tmp_path / "report"
        assert main(["report", "--account-url", azurite.endpoint, "--out", str(out), "--no-progress"]) == 0
        assert identity.issued == [STORAGE_RESOURCE]
    assert pd.read_csv(out / "tables" / "success_rate.csv").set_index("ResultType")["Count"].to_dict() == {
        "Succeeded": 2, "Failed": 1}


def test_the_report_takes_one_storage_option(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--connection-string", "UseDevelopmentStorage=true",
              "--account-url", "https://x.table.core.windows.net", "--out", "unused"])
    assert "not allowed with argument" in capsys.readouterr().err
