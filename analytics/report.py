"""The Rooms report: built as data (sections of tables, figures and key figures), rendered to HTML and files last."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from . import figures, transforms
from .loaders import Dataset

TEMPLATES = Path(__file__).with_name("templates")
HTML_ROWS = 25  # rows shown per table in the HTML; the CSV and Parquet files hold every row


@dataclass
class Table:
    name: str  # file stem of its CSV and Parquet files
    title: str
    frame: pd.DataFrame
    note: str = ""


@dataclass
class Figure:
    title: str
    png_base64: str


@dataclass
class Section:
    id: str
    title: str
    description: str = ""
    metrics: dict[str, str] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


@dataclass
class Report:
    title: str
    generated_at: datetime
    sources: list[str]
    sections: list[Section]
    skipped: list[str] = field(default_factory=list)  # malformed input lines skipped, one line per file

    def tables(self) -> list[Table]:
        return [table for section in self.sections for table in section.tables]


@dataclass(frozen=True)
class ReportOptions:
    """Knobs of the report: drill-down room (default: the busiest), late/early threshold, error limit."""

    room_id: str | None = None
    late_minutes: float = 5.0
    early_minutes: float = 5.0
    error_limit: int = 100
    title: str = "Anteroom Rooms report"


def _percent(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.1%}"


def _share_of(table: pd.DataFrame, column: str, value: str) -> float:
    match = table.loc[table[column] == value, "Share"]
    return float(match.iloc[0]) if len(match) else 0.0


def operations_sections(operations: pd.DataFrame, options: ReportOptions,
                        states: pd.DataFrame | None = None) -> list[Section]:
    """The Rooms Insights workbook tiles, the three published KQL queries, and the rooms analytics.

    `states` is `transforms.room_states(operations)` when the caller has it already.
    """
    success = transforms.success_rate(operations)
    by_operation = transforms.volume_by_operation(operations)
    by_code = transforms.volume_by_response_code(operations)
    by_version = transforms.volume_by_version(operations)
    rooms = transforms.busiest_rooms(operations)
    room_id = options.room_id or (rooms["RoomId"].iloc[0] if len(rooms) else None)
    states = transforms.room_states(operations) if states is None else states
    failed = int((operations["ResultType"] == "Failed").sum())

    workbook = Section(
        "workbook", "Rooms API (Rooms Insights workbook)",
        "Success rate and volume by operation, response code and api-version, as the workbook's pie tiles.",
        metrics={"Operations": f"{len(operations):,}", "Success rate": _percent(_share_of(success, "ResultType", "Succeeded")),
                 "Failed": f"{failed:,}", "Rooms seen": f"{operations['RoomId'].nunique():,}"},
        tables=[Table("success_rate", "Success rate", success), Table("volume_by_operation", "Volume by operation", by_operation),
                Table("volume_by_response_code", "Volume by response code", by_code),
                Table("volume_by_version", "Volume by api-version", by_version)],
        figures=[Figure("Rooms API Success Rate", figures.pie(success, "ResultType", title="Success rate")),
                 Figure("Volume by Operation Type", figures.pie(by_operation, "OperationName", title="By operation")),
                 Figure("Volume by Response Code", figures.pie(by_code, "ResultSignature", title="By response code")),
                 Figure("Operations Versions", figures.pie(by_version, "OperationVersion", title="By api-version"))],
    )
    kql = Section(
        "kql", "Published queries",
        "The three sample queries of ACSRoomsIncomingOperations: result counts, averages by version, recent errors.",
        tables=[Table("result_counts", "Operation result counts (by OperationName asc, Count desc)",
                      transforms.result_counts(operations)),
                Table("version_summary", "Operation summary by api-version", transforms.version_summary(operations)),
                Table("recent_errors", f"Errors by recency (latest {options.error_limit})",
                      transforms.recent_errors(operations, options.error_limit))],
    )
    hot_spots = transforms.error_hot_spots(operations)
    by_hour = transforms.failures_by_hour_of_day(operations)
    errors = Section(
        "errors", "Error hot spots", "Failures by operation, status and hour; and by hour of day (UTC).",
        tables=[Table("error_hot_spots", "Top failure clusters (operation x status x hour)", hot_spots),
                Table("latency_by_operation", "Latency by operation (DurationMs)", transforms.latency_by_operation(operations))],
        figures=[Figure("Failures by operation and hour of day",
                        figures.heatmap(by_hour, title="Failures by hour of day (UTC)", xlabel="hour"))],
    )
    drill_tables = [Table("busiest_rooms", "Busiest rooms", rooms)]
    if room_id is not None:
        drill_tables.append(Table("room_drill_down", f"Operations of room {room_id} (newest first)",
                                  transforms.room_drill_down(operations, room_id).drop(columns="TimeGenerated")))
    drill = Section("drill-down", "Room drill-down", "The workbook's per-room grid for one room.", tables=drill_tables)

    created = transforms.rooms_created_over_time(operations)
    lifespans = transforms.lifespan_distribution(operations)
    pstn = transforms.pstn_share(states)
    roles = transforms.role_mix(states)
    sizes = transforms.roster_size_distribution(states)
    room_section = Section(
        "rooms", "Rooms", "Rooms created over time, booked lifespans, PSTN dial-out and rosters (latest known state).",
        metrics={"Rooms created": f"{int(created['RoomsCreated'].sum()):,}",
                 "PSTN dial-out enabled": _percent(_share_of(pstn, "PstnDialOut", "enabled")),
                 "Median roster size": str(states["RoomParticipantsCount"].median()) if len(states) else "n/a"},
        tables=[Table("rooms_created", "Rooms created per day", created), Table("lifespans", "Booked lifespan", lifespans),
                Table("pstn_share", "PSTN dial-out", pstn), Table("role_mix", "Role mix (Collaborator derived)", roles),
                Table("roster_sizes", "Roster sizes", sizes)],
        figures=[Figure("Rooms created per day", figures.bars(created, "Period", "RoomsCreated", title="Rooms created per day")),
                 Figure("Booked lifespan", figures.bars(lifespans, "Lifespan", "Rooms", title="Booked lifespan", horizontal=True)),
                 Figure("Role mix", figures.pie(roles, "Role", "Participants", title="Roster places by role"))],
    )
    return [workbook, kql, errors, drill, room_section]


def calls_sections(dataset: Dataset, options: ReportOptions, states: pd.DataFrame | None = None) -> list[Section]:
    """Calls, concurrency, attendance against the roster, and booked validity against use.

    `states` is `transforms.room_states(dataset.operations)` when the caller has it already.
    """
    attendance = dataset.attendance
    call_table = transforms.calls(attendance)
    per_room = transforms.calls_per_room(call_table)
    peaks = transforms.peak_concurrency(attendance)
    overall = transforms.overall_peak_concurrency(attendance)
    durations = pd.concat([transforms.distribution(call_table["CallDuration"] / 60, "Call minutes"),
                           transforms.distribution(call_table["Participants"], "Participants per call"),
                           transforms.distribution(call_table["Connections"], "Connections per call")], ignore_index=True)
    peak_value = int(overall["PeakParticipants"].iloc[0])
    peak_at = overall["PeakAt"].iloc[0]
    call_section = Section(
        "calls", "Room calls", "Calls per room, durations, participants and peak concurrency.",
        metrics={"Calls": f"{len(call_table):,}", "Participant connections": f"{int(attendance['ParticipantId'].notna().sum()):,}",
                 "Peak concurrency (all calls)": f"{peak_value} at {peak_at:%Y-%m-%d %H:%M} UTC" if peak_value else "0"},
        tables=[Table("call_distributions", "Distributions", durations), Table("calls_per_room", "Calls per room", per_room),
                Table("peak_concurrency", "Peak concurrency per call", peaks), Table("calls", "Calls", call_table)],
        figures=[Figure("Call duration", figures.histogram(call_table["CallDuration"] / 60, title="Call duration",
                                                           xlabel="minutes")),
                 Figure("Participants per call", figures.histogram(call_table["Participants"], title="Participants per call",
                                                                   xlabel="distinct participants"))],
    )
    late = transforms.late_joiners(attendance, options.late_minutes)
    early = transforms.early_leavers(attendance, options.early_minutes)
    tables = [Table("late_joiners", f"Late joiners (> {options.late_minutes:g} min after call start)", late),
              Table("early_leavers", f"Early leavers (> {options.early_minutes:g} min before call end)", early)]
    metrics = {"Late joins": f"{len(late):,}", "Early leaves": f"{len(early):,}"}
    if len(dataset.roster):
        missing = transforms.no_shows(attendance, dataset.roster)
        by_room = transforms.attendance_by_room(attendance, dataset.roster, options.late_minutes)
        metrics["No-shows"] = f"{len(missing):,}"
        invited = by_room["RosterSize"].sum()
        metrics["Attendance rate"] = _percent(by_room["Attended"].sum() / invited if invited else float("nan"))
        tables = [Table("attendance_by_room", "Attendance by room", by_room),
                  Table("no_shows", "No-shows (roster users who joined no call of their room)", missing), *tables]
    attendance_section = Section(
        "attendance", "Attendance",
        "Roster against who joined: no-shows, late joiners, early leavers."
        + ("" if len(dataset.roster) else " No roster was loaded, so no-shows are not shown."),
        metrics=metrics, tables=tables)
    states = transforms.room_states(dataset.operations) if states is None else states
    usage = transforms.validity_vs_usage(states, call_table)
    usage_section = Section(
        "usage", "Booked validity vs use", "Minutes booked (RoomLifespan) against minutes of calls held, per room.",
        metrics={"Booked minutes": f"{usage['BookedMinutes'].sum():,.0f}", "Call minutes": f"{usage['UsedMinutes'].sum():,.0f}"},
        tables=[Table("validity_vs_usage", "Validity vs use", usage)])
    return [call_section, attendance_section, usage_section]


def build_report(dataset: Dataset, options: ReportOptions = ReportOptions(), now: datetime | None = None) -> Report:
    """The whole report as data. Pure: reads nothing, writes nothing, leaves `dataset` untouched."""
    sections = []
    states = transforms.room_states(dataset.operations)
    if len(dataset.operations):
        sections += operations_sections(dataset.operations, options, states)
    if len(dataset.attendance):
        sections += calls_sections(dataset, options, states)
    return Report(options.title, now or datetime.now(timezone.utc), list(dataset.sources), sections,
                  list(dataset.skipped))


def _cell(value: object, column: object = "") -> str:
    if value is None or (not isinstance(value, (list, tuple)) and pd.isna(value)):
        return ""
    if isinstance(value, float) and str(column).endswith(("Share", "Rate")):
        return f"{value:.1%}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    environment.filters["cell"] = _cell
    return environment


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (figures inline, no external resources)."""
    return _environment().get_template("report.html.j2").render(report=report, max_rows=HTML_ROWS)


def write_report(report: Report, out_dir: str | os.PathLike) -> list[Path]:
    """Write report.html plus tables/<name>.csv and tables/<name>.parquet; returns the paths written.

    Raises OSError when the folder or a file cannot be written.
    """
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    written = []
    page = out / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    written.append(page)
    for table in report.tables():
        frame = table.frame.copy(deep=False)
        frame.columns = [str(column) for column in frame.columns]
        csv_path, parquet_path = out / "tables" / f"{table.name}.csv", out / "tables" / f"{table.name}.parquet"
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        # Arrow's CSV writer: the same values as pandas' to_csv, far faster on large tables with times.
        pacsv.write_csv(arrow.cast(pa.schema([pa.field(f.name, _csv_type(f.type)) for f in arrow.schema])), csv_path)
        pq.write_table(arrow, parquet_path)
        written += [csv_path, parquet_path]
    return written


def _csv_type(kind: pa.DataType) -> pa.DataType:
    """Categories are written as their values; everything else as it is."""
    return kind.value_type if pa.types.is_dictionary(kind) else kind
