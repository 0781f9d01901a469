"""Fixtures of the analytics tests: the hand-written inputs in every format."""
from __future__ import annotations

from pathlib import Path

import pytest

from . import scenario

DATA = Path(__file__).with_name("data")
OPERATION_INPUTS = {
    "diagnostic": DATA / "ops.diagnostic.jsonl",
    "diagnostic-tree": DATA / "diagnostic-tree",
    "eventhub": DATA / "ops.eventhub.json",
    "la-csv": DATA / "ops.la.csv",
    "la-json": DATA / "ops.la.json",
}


@pytest.fixture
def call_inputs(tmp_path: Path) -> dict[str, Path]:
    """The call scenario written in every call-event, call-summary and roster format."""
    return {
        "eventgrid": scenario.write_eventgrid_array(tmp_path / "events.eventgrid.json"),
        "cloudevents": scenario.write_cloudevents_lines(tmp_path / "events.cloudevents.jsonl"),
        "callsummary": scenario.write_callsummary_raw(tmp_path / "callsummary.jsonl"),
        "callsummary-csv": scenario.write_callsummary_csv(tmp_path / "callsummary.csv"),
        "roster": scenario.write_roster_pages(tmp_path / "roster.jsonl"),
        "roster-csv": scenario.write_roster_csv(tmp_path / "roster.csv"),
    }
