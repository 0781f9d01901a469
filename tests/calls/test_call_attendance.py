"""Room calls leave attendance records that the analytics package loads from Table storage."""
from __future__ import annotations

import time

import pytest
from azure.communication.rooms import ParticipantRole

from analytics import transforms as t
from analytics.loaders import load_table_storage

from tests.support.calls import new_user, phone, roster

pytestmark = pytest.mark.stack


def _attendance_of(stack, room_id: str, expected_rows: int):
    """The room's attendance rows once the host's background writer has stored them all."""
    deadline = time.monotonic() + 30
    while True:
        rows = load_table_storage(stack.env["ANTEROOM_STORAGE_CONNECTION_STRING"]).attendance
        rows = rows[rows["RoomId"] == room_id]
        complete = len(rows) == expected_rows and rows["ParticipantEndTime"].notna().all()
        if complete or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def test_joins_and_leaves_become_attendance_rows(stack, rooms_client, identity_client):
    presenter, attendee, no_show = (new_user(stack, identity_client) for _ in range(3))
    room = rooms_client.create_room(
        pstn_dial_out_enabled=True,
        participants=roster((presenter, ParticipantRole.PRESENTER), (attendee, ParticipantRole.ATTENDEE),
                            (no_show, ParticipantRole.CONSUMER)),
    )
    assert presenter.join(room.id).status_code == 200
    assert attendee.join(room.id).status_code == 200
    dial = presenter.request("POST", f"/roomCalls/{room.id}/dialOut",
                             {"phoneNumber": "+14255550177", "callerIdNumber": stack.caller_number})
    assert dial.json()["outcome"] == "answered"
    phone(stack, "+14255550177", "leave").raise_for_status()
    assert attendee.me(room.id, "leave").status_code == 200
    assert presenter.me(room.id, "leave").status_code == 200  # the last one out ends the call

    rows = _attendance_of(stack, room.id, expected_rows=3)
    by_user = rows.set_index("Identifier")
    assert set(by_user.index) == {presenter.raw_id, attendee.raw_id, "4:+14255550177"}
    assert by_user.loc[presenter.raw_id, "Role"] == "Presenter"
    assert by_user.loc[attendee.raw_id, "Role"] == "Attendee"
    assert by_user.loc["4:+14255550177", "EndpointType"] == "PSTN"
    assert rows["ParticipantEndTime"].notna().all()
    assert (rows["ParticipantEndTime"] >= rows["ParticipantStartTime"]).all()
    assert rows["CorrelationId"].nunique() == 1

    calls = t.calls(rows)
    assert len(calls) == 1
    assert t.peak_concurrency(rows)["PeakParticipants"].iloc[0] == 3
