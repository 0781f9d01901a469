"""Attendance from calling events (CallStarted, CallEnded, CallParticipantAdded/Removed), folded piece by piece.

A month of events does not fit in memory as events, and need not: each piece is reduced at once to
one row per call and one row per (call, participant) connection, keeping only what the attendance
rows need, and the pieces' rows are folded again at the end. Every figure is a first, last, min or
max in input order, so folding piece by piece gives what one pass over all events would, and an
event delivered twice (Event Grid delivers at least once) folds into the same values.

Grouping runs on integer codes (`pd.factorize`, category codes) of the ids; strings only name the result.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

TIME_DTYPE = "datetime64[ns, UTC]"


def _pointer(valid: np.ndarray) -> np.ndarray:
    """Each row's own position where `valid`, else NaN: groupby's first/last of it point at a row per group."""
    return np.where(valid, np.arange(len(valid), dtype=np.float64), np.nan)


def _at(values: pd.Series, pointers: np.ndarray) -> pd.Series:
    """The values at row `pointers` (NaN: missing), as a str Series."""
    rows = np.where(np.isnan(pointers), -1, pointers).astype(np.int64)
    taken = pd.Series(values.array.take(rows, allow_fill=True), dtype=values.dtype)
    return taken.astype("str") if not isinstance(values.dtype, pd.StringDtype) else taken


def _key(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    codes, names = pd.factorize(values)
    return codes.astype(np.int64), pd.Index(names)


def _fold_calls(call: np.ndarray, call_ids: pd.Index, rooms: pd.Series, servers: pd.Series,
                start: pd.Series) -> pd.DataFrame:
    """One row per call (codes >= 0): the first room and server call id met, the earliest CallStarted."""
    frame = pd.DataFrame({"Call": call, "Room": _pointer(rooms.notna().to_numpy(dtype=bool)),
                          "Server": _pointer(servers.notna().to_numpy(dtype=bool)),
                          "Start": pd.Series(start.array, dtype=TIME_DTYPE)})
    folded = frame[call >= 0].groupby("Call", sort=True).agg(Room=("Room", "first"), Server=("Server", "first"),
                                                             Start=("Start", "min"))
    return pd.DataFrame({"CorrelationId": pd.Series(call_ids.take(folded.index.to_numpy()), dtype="str"),
                         "RoomId": _at(rooms, folded["Room"].to_numpy()),
                         "ServerCallId": _at(servers, folded["Server"].to_numpy()),
                         "CallStartTime": folded["Start"].reset_index(drop=True)})


# Text columns of a connection: (column, aggregation) -- the first join's identity, the last leave's reason.
_PEOPLE_TEXT = (("JoinIdentifier", "first"), ("JoinRole", "first"), ("LeaveIdentifier", "first"),
                ("LeaveRole", "first"), ("EndReason", "last"))


def _fold_people(call: np.ndarray, call_ids: pd.Index, key: np.ndarray, keys: pd.Index, rows: np.ndarray,
                 has_id: np.ndarray, start: pd.Series, end: pd.Series,
                 text: dict[str, tuple[pd.Series, np.ndarray]]) -> pd.DataFrame:
    """One row per (call, participant key) over the `rows` mask: identity from the first join (else
    the first leave), the first join, the last leave and the last leave's reason. `text` maps each
    text column to (values, mask of the rows it counts for)."""
    width = max(len(keys), 1)
    frame = pd.DataFrame({"Group": call * width + key, "HasId": has_id,
                          "Start": pd.Series(start.array, dtype=TIME_DTYPE),
                          "End": pd.Series(end.array, dtype=TIME_DTYPE),
                          **{name: _pointer(mask & values.notna().to_numpy(dtype=bool))
                             for name, (values, mask) in text.items()}})
    folded = frame[rows].groupby("Group", sort=True).agg(
        HasId=("HasId", "max"), Start=("Start", "min"), End=("End", "max"),
        **{name: (name, how) for name, how in _PEOPLE_TEXT})
    groups = folded.index.to_numpy()
    out = pd.DataFrame({"CorrelationId": pd.Series(call_ids.take(groups // width), dtype="str"),
                        "Key": pd.Series(keys.take(groups % width), dtype="str"),
                        "HasId": folded["HasId"].to_numpy(dtype=bool),
                        "Start": folded["Start"].reset_index(drop=True), "End": folded["End"].reset_index(drop=True)})
    for name, _ in _PEOPLE_TEXT:
        pointers = folded[name].to_numpy()
        if name.startswith("Leave"):
            # A leave's identity only counts when no join has one: once a join's is found, drop the leave's.
            pointers = np.where(np.isnan(folded["Join" + name.removeprefix("Leave")].to_numpy()), pointers, np.nan)
        out[name] = _at(text[name][0], pointers)
    return out


class CallEventFold:
    """Folds normalized calling events (EVENT_KINDS columns with short event types), a piece at a time."""

    def __init__(self) -> None:
        self._calls: list[pd.DataFrame] = []
        self._ended: list[pd.DataFrame] = []
        self._people: list[pd.DataFrame] = []

    def add(self, events: pd.DataFrame) -> None:
        """Fold one piece of events in; events without a call id are ignored."""
        events = events.reset_index(drop=True)
        call, call_ids = _key(events["CorrelationId"])
        if not (call >= 0).any():
            return
        kind = events["EventType"]
        started = (kind == "CallStarted").to_numpy(dtype=bool)
        times = events["EventTime"]
        self._calls.append(_fold_calls(call, call_ids, events["RoomId"], events["ServerCallId"], times.where(started)))
        ended = (kind == "CallEnded").to_numpy(dtype=bool) & (call >= 0)
        if ended.any():
            self._ended.append(pd.DataFrame({
                "CorrelationId": events["CorrelationId"][ended], "EventTime": times[ended],
                "CallDuration": events["CallDuration"][ended], "ReasonPhrase": events["ReasonPhrase"][ended].astype("str"),
            }).reset_index(drop=True))
        join = (kind == "CallParticipantAdded").to_numpy(dtype=bool)
        leave = (kind == "CallParticipantRemoved").to_numpy(dtype=bool)
        participant = events["ParticipantId"]
        key, keys = _key(participant.fillna(events["Identifier"]))
        rows = (join | leave) & (call >= 0) & (key >= 0)
        if not rows.any():
            return
        times, identifier, role = events["EventTime"], events["Identifier"], events["Role"]
        self._people.append(_fold_people(
            call, call_ids, key, keys, rows, participant.notna().to_numpy(dtype=bool), times.where(join),
            times.where(leave), {"JoinIdentifier": (identifier, join), "JoinRole": (role, join),
                                 "LeaveIdentifier": (identifier, leave), "LeaveRole": (role, leave),
                                 "EndReason": (events["ReasonPhrase"], leave)}))

    def calls(self) -> pd.DataFrame:
        """One row per call: CorrelationId, RoomId, ServerCallId, CallStartTime, CallEndTime, CallDuration, CallEndReason.

        The end, duration and reason are the last known of the call's CallEnded events in time order.
        """
        if not self._calls:
            return pd.DataFrame({"CorrelationId": pd.Series([], dtype="str")})
        parts = pd.concat(self._calls, ignore_index=True)
        call, call_ids = _key(parts["CorrelationId"])
        calls = _fold_calls(call, call_ids, parts["RoomId"], parts["ServerCallId"], parts["CallStartTime"])
        self._calls = [calls]
        if not self._ended:
            return calls.assign(CallEndTime=pd.NaT, CallDuration=np.nan, CallEndReason=None)
        ended = pd.concat(self._ended, ignore_index=True).sort_values("EventTime", kind="stable")
        last = ended.groupby("CorrelationId", sort=False).agg(
            CallEndTime=("EventTime", "last"), CallDuration=("CallDuration", "last"),
            CallEndReason=("ReasonPhrase", "last"))
        return calls.merge(last, left_on="CorrelationId", right_index=True, how="left")

    def participants(self) -> pd.DataFrame:
        """One row per connection: CorrelationId, ParticipantId, Identifier, Role, ParticipantStartTime,
        ParticipantEndTime, ParticipantEndReason. Consumes the folded rows: call it once, after the last add()."""
        if not self._people:
            return pd.DataFrame({"CorrelationId": pd.Series([], dtype="str")})
        parts = pd.concat(self._people, ignore_index=True)
        self._people = []
        call, call_ids = _key(parts["CorrelationId"])
        key, keys = _key(parts["Key"])
        group = call * max(len(keys), 1) + key
        repeated = pd.Series(group).duplicated(keep=False).to_numpy()
        if repeated.any():
            # Connections whose events fell into more than one piece: fold their rows once more.
            everywhere = np.ones(len(parts), dtype=bool)
            folded = _fold_people(call, call_ids, key, keys, repeated, parts["HasId"].to_numpy(dtype=bool),
                                  parts["Start"], parts["End"],
                                  {name: (parts[name], everywhere) for name, _ in _PEOPLE_TEXT})
            keep = ~repeated
            # Column by column, so the old and new copy of only one column are held at a time.
            people = pd.DataFrame(index=pd.RangeIndex(int(keep.sum()) + len(folded)))
            for name in list(parts.columns):
                people[name] = pd.concat([parts[name][keep], folded[name]], ignore_index=True).array
                del parts[name]
            del folded
        else:
            people = parts
        del parts
        return pd.DataFrame({
            "CorrelationId": people["CorrelationId"],
            "ParticipantId": people["Key"].where(people["HasId"]),
            "Identifier": people["JoinIdentifier"].fillna(people["LeaveIdentifier"]),
            "Role": people["JoinRole"].fillna(people["LeaveRole"]),
            "ParticipantStartTime": people["Start"], "ParticipantEndTime": people["End"],
            "ParticipantEndReason": people["EndReason"],
        })
