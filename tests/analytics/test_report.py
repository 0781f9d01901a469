"""The report: data first, then one self-contained HTML page plus a CSV and a Parquet file per table."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pandas as pd

from analytics.cli import main
from analytics.loaders import Dataset, load_inputs
from analytics.report import ReportOptions, Section, Table, Report, build_report, render_html, write_report

from .conftest import OPERATION_INPUTS


def test_cli_report_from_every_format_writes_html_and_tables(call_inputs, tmp_path, capsys):
    out = tmp_path / "report"
    inputs = [str(OPERATION_INPUTS["diagnostic-tree"]), *(str(call_inputs[k]) for k in ("cloudevents", "callsummary", "roster"))]
    assert main(["report", *inputs, "--out", str(out), "--room-id", "R1", "--no-progress"]) == 0
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=["']https?:""", html)  # self-contained
    assert html.count("data:image/png;base64,") >= 8
    for title in ("Rooms API (Rooms Insights workbook)", "Published queries", "Room drill-down", "Attendance",
                  "Booked validity vs use", "Peak concurrency per call"):
        assert title in html
    assert "71.4%" in html  # success rate 5/7
    success = pd.read_csv(out / "tables" / "success_rate.csv")
    assert success.set_index("ResultType")["Count"].to_dict() == {"Succeeded": 5, "Failed": 2}
    no_shows = pd.read_parquet(out / "tables" / "no_shows.parquet")
    assert sorted(no_shows["RoomId"]) == ["R1", "R2"]
    drill = pd.read_csv(out / "tables" / "room_drill_down.csv")
    assert drill["OperationName"].tolist() == ["UpdateParticipants", "GetRoom", "CreateRoom"]
    tables = {p.stem for p in (out / "tables").iterdir()}
    assert {p.suffix for p in (out / "tables").iterdir()} == {".csv", ".parquet"}
    assert {"version_summary", "recent_errors", "result_counts", "peak_concurrency", "late_joiners"} <= tables
    assert "7 operations" in capsys.readouterr().err


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"eventType": "Microsoft.Communication.CallStarted"\n')
    assert main(["report", str(bad), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert f"{bad}:1" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "o")]) == 2


def test_html_escapes_values():
    frame = pd.DataFrame({"RoomId": ["<script>alert(1)</script>"], "Share": [0.25]})
    report = Report("t <b>", datetime(2026, 11, 2, tzinfo=timezone.utc), ["in<put>"],
                    [Section("s", "S & T", tables=[Table("x", "X", frame)])])
    html = render_html(report)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "t &lt;b&gt;" in html and "S &amp; T" in html and "25.0%" in html


def test_long_tables_are_cut_in_html_but_complete_in_files(tmp_path):
    frame = pd.DataFrame({"N": range(60)})
    report = Report("t", datetime(2026, 11, 2, tzinfo=timezone.utc), [], [Section("s", "S", tables=[Table("many", "Many", frame)])])
    write_report(report, tmp_path)
    assert "Showing 25 of 60 rows" in (tmp_path / "report.html").read_text()
    assert len(pd.read_csv(tmp_path / "tables" / "many.csv")) == 60


def test_report_without_roster_says_so(call_inputs):
    data = load_inputs([call_inputs["eventgrid"]], progress=False)
    report = build_report(data, ReportOptions(late_minutes=10))
    attendance = next(s for s in report.sections if s.id == "attendance")
    assert "No roster was loaded" in attendance.description
    late = next(t for t in attendance.tables if t.name == "late_joiners")
    assert len(late.frame) == 2 and "10 min" in late.title  # u3 (15 min) and u5's rejoin (21 min)
    assert [s.id for s in build_report(Dataset()).sections] == []
