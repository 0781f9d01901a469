"""Transforms are pure: they never change the frames they are given."""
from __future__ import annotations

import inspect

import pandas as pd
import pytest

from analytics import transforms as t
from analytics.loaders import load_inputs
from analytics.report import ReportOptions, build_report

from .conftest import OPERATION_INPUTS


@pytest.fixture
def data(call_inputs):
    return load_inputs([OPERATION_INPUTS["diagnostic"], call_inputs["eventgrid"], call_inputs["callsummary"],
                        call_inputs["roster"]], progress=False)


def test_no_transform_mutates_its_input(data):
    ops, rows, roster = data.operations, data.attendance, data.roster
    states = t.room_states(ops)
    call_table = t.calls(rows)
    arguments = {"operations": ops, "attendance": rows, "roster": roster, "states": states, "call_table": call_table,
                 "values": call_table["CallDuration"]}
    originals = {name: value.copy(deep=True) for name, value in arguments.items()}
    called = []
    for name, function in inspect.getmembers(t, inspect.isfunction):
        if name.startswith("_") or function.__module__ != t.__name__:
            continue
        parameters = inspect.signature(function).parameters
        kwargs = {p: arguments[p] for p in parameters if p in arguments}
        if "room_id" in parameters:
            kwargs["room_id"] = "R1"
        if "name" in parameters:
            kwargs["name"] = "x"
        result = function(**kwargs)
        assert isinstance(result, pd.DataFrame), name
        called.append(name)
    assert len(called) >= 25
    for name, value in arguments.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(value, originals[name])
        else:
            pd.testing.assert_series_equal(value, originals[name])


def test_building_the_report_leaves_the_dataset_untouched(data):
    before = (data.operations.copy(deep=True), data.attendance.copy(deep=True), data.roster.copy(deep=True))
    report = build_report(data, ReportOptions(room_id="R1"))
    assert report.sections
    pd.testing.assert_frame_equal(data.operations, before[0])
    pd.testing.assert_frame_equal(data.attendance, before[1])
    pd.testing.assert_frame_equal(data.roster, before[2])


def test_transforms_handle_empty_frames():
    empty = load_inputs([], progress=False)
    assert len(t.success_rate(empty.operations)) == 0
    assert t.overall_peak_concurrency(empty.attendance).iloc[0]["PeakParticipants"] == 0
    assert len(t.peak_concurrency(empty.attendance)) == 0
    assert len(t.rooms_created_over_time(empty.operations)) == 0
    assert build_report(empty).sections == []
