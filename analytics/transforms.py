"""Pure DataFrame -> DataFrame transforms over the normalized frames; none mutates its input.

Operation transforms take the operations frame (ACSRoomsIncomingOperations columns); call transforms
take the attendance frame (one row per participant connection, see `analytics.schema.ATTENDANCE`);
attendance-against-roster transforms also take the roster frame (RoomId, RawId, Role).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

ROLE_COLUMNS = {
    "Presenter": "RoomParticipantsPresenter",
    "Attendee": "RoomParticipantsAttendee",
    "Consumer": "RoomParticipantsConsumer",
}
LIFESPAN_BINS = (0, 60, 24 * 60, 7 * 24 * 60, 30 * 24 * 60, 180 * 24 * 60, np.inf)
# The drill-down's result marks: U+2714 HEAVY CHECK MARK and U+2718 HEAVY BALLOT X (text, not emoji).
RESULT_MARKS = {True: "\u2714", False: "\u2718"}
LIFESPAN_LABELS = ("up to 1 hour", "1 hour to 1 day", "1 to 7 days", "7 to 30 days", "30 to 180 days",
                   "over 180 days")


def _counts(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    values = frame[column]
    if isinstance(values.dtype, pd.CategoricalDtype):  # count on the codes; only the few categories become text
        counted = values.value_counts(dropna=False)
        counted = counted[counted > 0]
        counted.index = pd.Index(counted.index.astype(object), dtype="string")
    else:
        counted = values.astype("string").value_counts(dropna=False)
    counts = counted.rename_axis(column).reset_index(name="Count")
    counts[column] = counts[column].astype("string").fillna("(none)")
    counts["Share"] = counts["Count"] / counts["Count"].sum() if len(frame) else 0.0
    return counts.sort_values(["Count", column], ascending=[False, True], ignore_index=True)


# --- Rooms Insights workbook tiles and the published KQL -------------------------------------

def success_rate(operations: pd.DataFrame) -> pd.DataFrame:
    """Workbook "Rooms API Success Rate": count and share by ResultType."""
    return _counts(operations, "ResultType")


def volume_by_operation(operations: pd.DataFrame) -> pd.DataFrame:
    """Workbook "Rooms API Volume by Operation Type"."""
    return _counts(operations, "OperationName")


def volume_by_response_code(operations: pd.DataFrame) -> pd.DataFrame:
    """Workbook "Rooms API Volume By Response Code"."""
    return _counts(operations, "ResultSignature")


def volume_by_version(operations: pd.DataFrame) -> pd.DataFrame:
    """Workbook "Rooms Operations Versions"."""
    return _counts(operations, "OperationVersion")


def result_counts(operations: pd.DataFrame) -> pd.DataFrame:
    """KQL "Rooms operation result counts": count by operation, version, result type and signature,
    ordered by OperationName asc, Count desc."""
    keys = ["OperationName", "OperationVersion", "ResultType", "ResultSignature"]
    # Count on the categorical codes, then turn the few resulting rows into text.
    counts = operations.groupby(keys, observed=True, dropna=False).size().reset_index(name="Count")
    counts[keys] = counts[keys].astype("string").fillna("")
    return counts.sort_values(["OperationName", "Count", "OperationVersion", "ResultSignature"],
                              ascending=[True, False, True, True], ignore_index=True)


def recent_errors(operations: pd.DataFrame, limit: int = 100) -> pd.DataFrame:
    """KQL "Rooms operational errors": the latest `limit` failed operations, newest first."""
    columns = ["TimeGenerated", "OperationName", "OperationVersion", "ResultSignature"]
    failed = operations.loc[(operations["ResultType"] == "Failed").to_numpy(dtype=bool), columns]
    return failed.sort_values("TimeGenerated", ascending=False, kind="stable").head(limit).reset_index(drop=True)


def version_summary(operations: pd.DataFrame, version: str | None = None) -> pd.DataFrame:
    """KQL "Rooms operation summary" per OperationVersion (or for one `version`).

    TotalRoomCount = distinct non-empty RoomId; the averages skip missing values, as KQL avg() does;
    SumPstnDialoutEnabled counts records with PstnDialOutEnabled true.
    """
    columns = ["OperationVersion", "RoomId", "AddedRoomParticipantsCount", "RemovedRoomParticipantsCount",
               "UpsertedRoomParticipantsCount", "RoomLifespan", "PstnDialOutEnabled"]
    frame = operations[columns] if version is None else operations.loc[
        (operations["OperationVersion"] == version).to_numpy(dtype=bool), columns]
    room = frame["RoomId"].where(frame["RoomId"] != "")
    grouped = frame.assign(RoomId=room, Pstn=frame["PstnDialOutEnabled"].fillna(False).astype(bool)).groupby(
        frame["OperationVersion"].astype("string"), dropna=False)
    summary = pd.DataFrame({
        "TotalRoomCount": grouped["RoomId"].nunique(),
        "AvgAddedParticipantsCount": grouped["AddedRoomParticipantsCount"].mean(),
        "AvgRemovedParticipantsCount": grouped["RemovedRoomParticipantsCount"].mean(),
        "AvgUpsertedParticipantsCount": grouped["UpsertedRoomParticipantsCount"].mean(),
        "AvgRoomLifespan": grouped["RoomLifespan"].mean(),
        "SumPstnDialoutEnabled": grouped["Pstn"].sum(),
    })
    summary.index = summary.index.rename("OperationVersion")
    return summary.reset_index().astype({"AvgAddedParticipantsCount": "Float64", "AvgRemovedParticipantsCount": "Float64",
                                         "AvgUpsertedParticipantsCount": "Float64", "AvgRoomLifespan": "Float64"})


def busiest_rooms(operations: pd.DataFrame, limit: int = 20) -> pd.DataFrame:
    """Rooms with the most operations (the drill-down picker, ordered by activity)."""
    keep = (operations["RoomId"].notna() & (operations["RoomId"] != "")).to_numpy(dtype=bool)
    rooms = operations.loc[keep, ["RoomId", "ResultType", "TimeGenerated"]]
    grouped = rooms.assign(Failed=(rooms["ResultType"] == "Failed")).groupby("RoomId")
    table = pd.DataFrame({"Operations": grouped.size(), "Failed": grouped["Failed"].sum(),
                          "FirstSeen": grouped["TimeGenerated"].min(), "LastSeen": grouped["TimeGenerated"].max()})
    return table.sort_values(["Operations", "LastSeen"], ascending=[False, False]).head(limit).reset_index()


def room_drill_down(operations: pd.DataFrame, room_id: str) -> pd.DataFrame:
    """Workbook drill-down grid for one room: OperationName, Level, Result, OperationDate, OperationTime.

    Ordered newest first, as KQL's `order by` (descending by default); the date is `MM/dd/y` (year
    without century) and the time `hh:mm:ss` (12-hour clock), as the workbook formats them. The
    workbook's result and calendar icons are emoji that text fonts lack (a browser without an emoji
    font draws a box); the result keeps a check mark or ballot X that DejaVu Sans has, the date none.
    """
    rows = operations[operations["RoomId"] == room_id].sort_values("TimeGenerated", ascending=False, kind="stable")
    times = rows["TimeGenerated"]
    icon = np.where(rows["ResultType"] == "Succeeded", RESULT_MARKS[True], RESULT_MARKS[False])
    return pd.DataFrame({
        "OperationName": rows["OperationName"].astype("string"),
        "Level": rows["Level"].astype("string"),
        "Result": pd.Series(icon, index=rows.index) + " " + rows["ResultSignature"].astype("string"),
        "OperationDate": times.dt.strftime("%m/%d/") + (times.dt.year % 100).astype("string"),
        "OperationTime": times.dt.strftime("%I:%M:%S"),
        "TimeGenerated": times,
    }).reset_index(drop=True)


# --- beyond the workbook: rooms ----------------------------------------------------------------

def room_states(operations: pd.DataFrame) -> pd.DataFrame:
    """Latest known state of each room from its successful operations (last non-missing value per column).

    Adds RoomParticipantsCollaborator = RoomParticipantsCount minus the three logged roles (ACS logs
    no Collaborator column), CreatedAt (successful CreateRoom time) and Deleted (a successful DeleteRoom).
    """
    columns = ["RoomLifespan", "PstnDialOutEnabled", "RoomParticipantsCount", *ROLE_COLUMNS.values()]
    ok = ((operations["ResultType"] == "Succeeded") & operations["RoomId"].notna()
          & (operations["RoomId"] != "")).to_numpy(dtype=bool)
    rows = np.flatnonzero(ok)
    # Time order of the successful rows (stable, so equal times keep input order), then per room the
    # position of its last row with a value, per column: only those values are taken, not whole columns.
    rows = rows[np.argsort(operations["TimeGenerated"].array.asi8[rows], kind="stable")]
    room, room_ids = pd.factorize(operations["RoomId"].take(rows), sort=True)
    order = np.arange(len(rows), dtype=np.float64)
    last = pd.DataFrame({name: np.where(operations[name].isna().to_numpy()[rows], np.nan, order) for name in columns})
    positions = last.groupby(room, sort=True).max()
    states = pd.DataFrame(index=pd.Index(room_ids.take(positions.index.to_numpy()), name="RoomId"))
    for name in columns:
        at = positions[name].to_numpy()
        picked = operations[name].take(rows[np.where(np.isnan(at), 0, at).astype(np.int64)]) if len(rows) else \
            operations[name].iloc[:0]
        states[name] = (picked.where(~np.isnan(at)) if len(rows) else picked).array
    name = operations["OperationName"].take(rows).to_numpy()
    times = operations["TimeGenerated"].take(rows).reset_index(drop=True)
    creates = times[name == "CreateRoom"].groupby(room[name == "CreateRoom"]).min()
    deleted = pd.Series(True, index=pd.unique(room[name == "DeleteRoom"]))
    creates.index = room_ids.take(creates.index.to_numpy())
    deleted.index = room_ids.take(deleted.index.to_numpy())
    states["RoomParticipantsCollaborator"] = (
        states["RoomParticipantsCount"] - states[list(ROLE_COLUMNS.values())].sum(axis=1, min_count=3)
    ).clip(lower=0)
    states["CreatedAt"] = creates.reindex(states.index)
    states["Deleted"] = deleted.reindex(states.index, fill_value=False).astype(bool)
    return states.reset_index()


def rooms_created_over_time(operations: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Successful CreateRoom count per period (`freq` a pandas offset alias), gaps as zero."""
    created = operations[(operations["OperationName"] == "CreateRoom") & (operations["ResultType"] == "Succeeded")]
    if created.empty:
        return pd.DataFrame({"Period": pd.Series([], dtype="datetime64[ns, UTC]"), "RoomsCreated": pd.Series([], dtype="int64")})
    counts = created.set_index("TimeGenerated").resample(freq).size()
    return counts.rename_axis("Period").reset_index(name="RoomsCreated")


def lifespan_distribution(operations: pd.DataFrame) -> pd.DataFrame:
    """Rooms by booked lifespan bucket, from the RoomLifespan of each successful CreateRoom."""
    created = operations[(operations["OperationName"] == "CreateRoom") & (operations["ResultType"] == "Succeeded")]
    minutes = created["RoomLifespan"].dropna().astype("float64")
    buckets = pd.cut(minutes, bins=LIFESPAN_BINS, labels=LIFESPAN_LABELS, right=True, include_lowest=True)
    counts = buckets.value_counts(sort=False).reindex(LIFESPAN_LABELS, fill_value=0)
    return counts.rename_axis("Lifespan").reset_index(name="Rooms")


def pstn_share(states: pd.DataFrame) -> pd.DataFrame:
    """Rooms with PSTN dial-out enabled, disabled, or unknown (older api-versions), from `room_states`."""
    value = states["PstnDialOutEnabled"].map({True: "enabled", False: "disabled"}).fillna("unknown")
    counts = value.value_counts().reindex(["enabled", "disabled", "unknown"], fill_value=0)
    table = counts.rename_axis("PstnDialOut").reset_index(name="Rooms")
    table["Share"] = table["Rooms"] / max(len(states), 1)
    return table


def role_mix(states: pd.DataFrame) -> pd.DataFrame:
    """Roster places by role over all rooms (Collaborator derived), from `room_states`."""
    columns = {**ROLE_COLUMNS, "Collaborator": "RoomParticipantsCollaborator"}
    totals = pd.Series({role: int(states[column].fillna(0).sum()) for role, column in columns.items()})
    table = totals.rename_axis("Role").reset_index(name="Participants")
    table["Share"] = table["Participants"] / max(int(totals.sum()), 1)
    return table


def roster_size_distribution(states: pd.DataFrame) -> pd.DataFrame:
    """Rooms by roster size (RoomParticipantsCount), from `room_states`."""
    sizes = states["RoomParticipantsCount"].dropna().astype("int64")
    return sizes.value_counts().sort_index().rename_axis("RosterSize").reset_index(name="Rooms")


def error_hot_spots(operations: pd.DataFrame, top: int = 20) -> pd.DataFrame:
    """Failed operations counted by OperationName x ResultSignature x hour, largest first."""
    failed = operations[operations["ResultType"] == "Failed"]
    frame = pd.DataFrame({"OperationName": failed["OperationName"].astype("string"),
                          "ResultSignature": failed["ResultSignature"].astype("string"),
                          "Hour": failed["TimeGenerated"].dt.floor("h")})
    counts = frame.value_counts().reset_index(name="Failures")
    return counts.sort_values(["Failures", "Hour", "OperationName"], ascending=[False, True, True]).head(top).reset_index(drop=True)


def failures_by_hour_of_day(operations: pd.DataFrame) -> pd.DataFrame:
    """Failed operations by OperationName (rows) and UTC hour of day 0-23 (columns)."""
    failed = operations[operations["ResultType"] == "Failed"]
    table = pd.crosstab(failed["OperationName"].astype("string"), failed["TimeGenerated"].dt.hour)
    return table.reindex(columns=range(24), fill_value=0)


def latency_by_operation(operations: pd.DataFrame) -> pd.DataFrame:
    """DurationMs percentiles per operation (p50, p95, p99, max)."""
    grouped = operations.groupby(operations["OperationName"].astype("string"))["DurationMs"]
    table = grouped.quantile([0.5, 0.95, 0.99]).unstack()
    table.columns = ["P50Ms", "P95Ms", "P99Ms"]
    table["MaxMs"] = grouped.max()
    table["Count"] = grouped.size()
    return table.reset_index()


# --- calls and attendance ----------------------------------------------------------------------

def calls(attendance: pd.DataFrame) -> pd.DataFrame:
    """One row per call: room, start, end, duration, participant connections, distinct users, PSTN legs."""
    # A PSTN leg in a call summary has no identifier ("null"); its connection id stands for it.
    # Grouping and counting run on integer codes of the call and person ids: strings only name the result.
    call_code, call_ids = pd.factorize(attendance["CorrelationId"])
    person_code = pd.factorize(attendance["Identifier"].fillna(attendance["ParticipantId"]))[0]
    (room_code,), room_names = _codes_together(attendance["RoomId"])
    valid = call_code >= 0
    people = pd.DataFrame({"Call": call_code, "Person": np.where(person_code >= 0, person_code, np.nan),
                           "Room": np.where(room_code >= 0, room_code, np.nan),
                           "CallStartTime": attendance["CallStartTime"].array, "CallEndTime": attendance["CallEndTime"].array,
                           "CallDuration": attendance["CallDuration"].to_numpy(),
                           "HasId": attendance["ParticipantId"].notna().to_numpy(dtype=bool),
                           "Pstn": (attendance["EndpointType"] == "PSTN").to_numpy(dtype=bool)})[valid]
    grouped = people.groupby("Call", sort=True)
    first = grouped[["Room", "CallStartTime", "CallEndTime", "CallDuration"]].first()
    room = first["Room"].to_numpy()
    table = pd.DataFrame({
        "CorrelationId": pd.Series(np.asarray(call_ids, dtype=object)[first.index.to_numpy()], dtype="str").array,
        "RoomId": pd.Series(room_names.take(np.where(np.isnan(room), -1, room).astype(np.int64), allow_fill=True),
                            dtype="str").array,
        "CallStartTime": first["CallStartTime"].array, "CallEndTime": first["CallEndTime"].array,
        "CallDuration": first["CallDuration"].to_numpy(),
        "Connections": grouped["HasId"].sum().to_numpy().astype("int64"),
        "Participants": grouped["Person"].nunique().to_numpy().astype("int64"),
        "PstnParticipants": people[people["Pstn"]].groupby("Call")["Person"].nunique().reindex(
            first.index, fill_value=0).to_numpy().astype("int64"),
    })
    return table.sort_values("CallStartTime", kind="stable", ignore_index=True)


def calls_per_room(call_table: pd.DataFrame) -> pd.DataFrame:
    """Calls and call minutes per room, from `calls`."""
    grouped = call_table.groupby("RoomId")
    table = pd.DataFrame({"Calls": grouped.size(), "CallMinutes": grouped["CallDuration"].sum() / 60,
                          "MaxParticipants": grouped["Participants"].max()})
    return table.reset_index().sort_values(["Calls", "CallMinutes"], ascending=False, ignore_index=True)


def distribution(values: pd.Series, name: str) -> pd.DataFrame:
    """count, mean, min, p50, p90, max of a numeric series, as one row named `name`."""
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    stats = {"Count": len(numbers), "Mean": numbers.mean(), "Min": numbers.min(), "P50": numbers.quantile(0.5),
             "P90": numbers.quantile(0.9), "Max": numbers.max()}
    return pd.DataFrame([{"Measure": name, **stats}])


def peak_concurrency(attendance: pd.DataFrame) -> pd.DataFrame:
    """Maximum simultaneous participants per call, and when it was first reached.

    A leave and a join at the same instant do not overlap (leaves are counted first).
    """
    people = attendance[attendance["ParticipantId"].notna() & attendance["ParticipantStartTime"].notna()]
    # Integer keys, the call's rank in id order: sorting and grouping by them keep the ids' order, far cheaper.
    call, call_ids = pd.factorize(people["CorrelationId"], sort=True)
    steps = _concurrency_steps(people, call)
    if steps.empty:
        return pd.DataFrame(columns=["CorrelationId", "RoomId", "PeakParticipants", "PeakAt"])
    best = steps.loc[steps.groupby("Call", sort=False)["Level"].idxmax()]
    codes = best["Call"].to_numpy()
    rooms = people["RoomId"].groupby(call).first()
    table = pd.DataFrame({"CorrelationId": np.asarray(call_ids)[codes],
                          "RoomId": rooms.reindex(codes).to_numpy(),
                          "PeakParticipants": best["Level"].to_numpy(), "PeakAt": best["Time"].array})
    return table.sort_values(["PeakParticipants", "PeakAt"], ascending=[False, True], ignore_index=True)


def overall_peak_concurrency(attendance: pd.DataFrame) -> pd.DataFrame:
    """Maximum simultaneous participants across all calls, and when it was first reached."""
    people = attendance[attendance["ParticipantId"].notna() & attendance["ParticipantStartTime"].notna()]
    steps = _concurrency_steps(people, None)
    if steps.empty:
        return pd.DataFrame({"PeakParticipants": [0], "PeakAt": [pd.NaT]})
    best = steps.loc[steps["Level"].idxmax()]
    return pd.DataFrame({"PeakParticipants": [int(best["Level"])], "PeakAt": [best["Time"]]})


def _concurrency_steps(people: pd.DataFrame, call: np.ndarray | None) -> pd.DataFrame:
    """+1 at each join and -1 at each leave in time order, with the running level.

    `call` (one integer key per row) keeps a level per call; None keeps one level across all calls.
    """
    end = people["ParticipantEndTime"].fillna(people["CallEndTime"])
    has_end = end.notna().to_numpy()
    call = np.zeros(len(people), dtype=np.int64) if call is None else call
    times = pd.concat([people["ParticipantStartTime"], end[has_end]], ignore_index=True)
    calls = np.concatenate([call, call[has_end]])
    deltas = np.concatenate([np.ones(len(call), dtype=np.int64), np.full(int(has_end.sum()), -1, dtype=np.int64)])
    order = np.lexsort((deltas, times.array.asi8, calls))  # numpy's lexsort is stable; -1 before +1 at one instant
    steps = pd.DataFrame({"Call": calls[order], "Time": times.take(order).reset_index(drop=True), "Delta": deltas[order]})
    return steps.assign(Level=steps.groupby("Call", sort=False)["Delta"].cumsum().astype("int64"))


def late_joiners(attendance: pd.DataFrame, minutes: float = 5) -> pd.DataFrame:
    """Connections that joined more than `minutes` after their call started."""
    late = attendance["ParticipantStartTime"] - attendance["CallStartTime"]
    rows = attendance[late > pd.Timedelta(minutes=minutes)]
    return rows[["CorrelationId", "RoomId", "Identifier", "Role", "CallStartTime", "ParticipantStartTime"]].assign(
        MinutesLate=(late[rows.index].dt.total_seconds() / 60)).reset_index(drop=True)


def early_leavers(attendance: pd.DataFrame, minutes: float = 5) -> pd.DataFrame:
    """Connections that left more than `minutes` before their call ended."""
    early = attendance["CallEndTime"] - attendance["ParticipantEndTime"]
    rows = attendance[early > pd.Timedelta(minutes=minutes)]
    return rows[["CorrelationId", "RoomId", "Identifier", "Role", "ParticipantEndTime", "CallEndTime"]].assign(
        MinutesEarly=(early[rows.index].dt.total_seconds() / 60)).reset_index(drop=True)


# Rows of roster plus attendance matched per part of the rooms, so the person ids of one part only are hashed at once.
_MATCH_ROWS = 2_000_000


def _codes_together(*columns: pd.Series) -> tuple[list[np.ndarray], pd.Index]:
    """Integer codes of several columns in one code space (-1 for missing); categoricals by their categories."""
    if all(isinstance(column.dtype, pd.CategoricalDtype) for column in columns):
        names = [column.cat.categories.astype("str") for column in columns]
        joint, uniques = pd.factorize(pd.Index(np.concatenate([np.asarray(n, dtype=object) for n in names])))
        out, start = [], 0
        for column, own in zip(columns, names):
            mapping = np.append(joint[start:start + len(own)], -1)  # code -1 stays -1
            out.append(mapping[column.cat.codes.to_numpy().astype(np.int64)])
            start += len(own)
        return out, pd.Index(uniques, dtype="str")
    codes, uniques = pd.factorize(pd.concat([column.astype("str") for column in columns], ignore_index=True))
    out, start = [], 0
    for column in columns:
        out.append(codes[start:start + len(column)].astype(np.int64))
        start += len(column)
    return out, pd.Index(uniques, dtype="str")


def _roster_matches(attendance: pd.DataFrame, roster: pd.DataFrame
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, pd.Index]:
    """By integer codes: per roster row, whether its room had a call and whether its user joined one of
    them; per room code, its roster size (distinct users); the room codes of roster and attendance rows.

    Rooms are coded once; person ids are coded per part of the rooms (by room code), so memory
    for the codes stays bounded with the roster's size.
    """
    n = len(roster)
    (roster_room, attendance_room), room_names = _codes_together(roster["RoomId"], attendance["RoomId"])
    had_call = np.zeros(len(room_names) + 1, dtype=bool)
    had_call[attendance_room[attendance_room >= 0]] = True
    in_call_room = (roster_room >= 0) & had_call[roster_room]
    joined = np.zeros(n, dtype=bool)
    size = np.zeros(len(room_names) + 1, dtype=np.int64)
    parts = max(1, -(-(n + len(attendance)) // _MATCH_ROWS))
    for part in range(parts):
        in_roster = np.flatnonzero(in_call_room & (roster_room % parts == part))
        in_attendance = np.flatnonzero((attendance_room >= 0) & (attendance_room % parts == part))
        person, _ = pd.factorize(pd.concat([roster["RawId"].take(in_roster).astype("str"),
                                            attendance["Identifier"].take(in_attendance).astype("str")],
                                           ignore_index=True))
        width = int(person.max()) + 2 if len(person) else 1
        roster_person, attendance_person = person[: len(in_roster)], person[len(in_roster):]
        came = attendance_person >= 0
        pairs = pd.unique(attendance_room[in_attendance][came].astype(np.int64) * width + attendance_person[came])
        keys = roster_room[in_roster].astype(np.int64) * width + roster_person
        known = roster_person >= 0
        joined[in_roster] = known & pd.Series(keys).isin(pairs).to_numpy()
        distinct = pd.unique(keys[known])  # hash-based: numpy's unique is far slower here
        np.add.at(size, (distinct // width).astype(np.int64), 1)
    return in_call_room, joined, size, roster_room, attendance_room, room_names


def no_shows(attendance: pd.DataFrame, roster: pd.DataFrame) -> pd.DataFrame:
    """Roster users who never joined any call of their room, for rooms that had at least one call."""
    in_call_room, joined, *_ = _roster_matches(attendance, roster)
    missing = roster.loc[in_call_room & ~joined, ["RoomId", "RawId", "Role"]]
    return missing.sort_values(["RoomId", "RawId"], ignore_index=True)


def attendance_by_room(attendance: pd.DataFrame, roster: pd.DataFrame, minutes: float = 5) -> pd.DataFrame:
    """Per room with calls: roster size, roster users who attended, no-shows, late joiners, early leavers.

    Late and early counts are distinct users with at least one such connection.
    """
    in_call_room, joined, size, roster_room, attendance_room, room_names = _roster_matches(attendance, roster)
    rooms = pd.unique(attendance_room[attendance_room >= 0])
    missing = np.bincount(roster_room[in_call_room & ~joined], minlength=len(room_names) + 1)
    names = pd.Index(room_names.take(rooms), name="RoomId")
    late = late_joiners(attendance, minutes).groupby("RoomId", observed=True)["Identifier"].nunique()
    early = early_leavers(attendance, minutes).groupby("RoomId", observed=True)["Identifier"].nunique()
    late.index, early.index = late.index.astype("str"), early.index.astype("str")
    table = pd.DataFrame({"RosterSize": size[rooms], "Attended": size[rooms] - missing[rooms], "NoShows": missing[rooms],
                          "LateJoiners": late.reindex(names, fill_value=0).to_numpy(),
                          "EarlyLeavers": early.reindex(names, fill_value=0).to_numpy()}, index=names)
    table["AttendanceRate"] = (table["Attended"] / table["RosterSize"]).where(table["RosterSize"] > 0)
    return table.reset_index().sort_values(["NoShows", "RoomId"], ascending=[False, True], ignore_index=True)


def validity_vs_usage(states: pd.DataFrame, call_table: pd.DataFrame) -> pd.DataFrame:
    """Booked validity (RoomLifespan minutes) against minutes of calls actually held, per room.

    UsedShare = call minutes / booked minutes; rooms without calls use 0 minutes.
    """
    used = call_table.groupby("RoomId").agg(Calls=("CorrelationId", "count"), UsedSeconds=("CallDuration", "sum"),
                                            FirstCall=("CallStartTime", "min"), LastCall=("CallEndTime", "max"))
    used.insert(1, "UsedMinutes", used.pop("UsedSeconds") / 60)
    table = states.set_index("RoomId")[["RoomLifespan"]].rename(columns={"RoomLifespan": "BookedMinutes"})
    table = table.join(used, how="left")
    table["Calls"] = table["Calls"].fillna(0).astype("int64")
    table["UsedMinutes"] = table["UsedMinutes"].fillna(0.0)
    table["UsedShare"] = (table["UsedMinutes"] / table["BookedMinutes"].astype("Float64")).where(table["BookedMinutes"] > 0)
    return table.reset_index().sort_values(["UsedMinutes", "RoomId"], ascending=[False, True], ignore_index=True)
