"""Analytics benchmark: `python -m benchmarks.analytics [--scale K] [--rounds R] [--work DIR [--reuse-data]]`.

Generates K x (1,000,000 operation-log lines + 1,000,000 Event Grid call events) with the simulator
(K seeded slices of about 150,000 rooms each, written into one diagnostic-settings PT1H.json tree,
one JSON-lines event file and one roster), then measures, each in its own process (wall time and
peak RSS from /usr/bin/time, load average before and after):
1. the full report end to end (`python -m analytics report`: load, every table and figure, HTML,
   CSV and Parquet);
2. the pandas loaders plus the report's aggregations;
3. the same aggregations in DuckDB over the same files (`read_json`, 2 threads),
the two sides alternating (DuckDB, pandas, pandas, DuckDB, ...) for R rounds. Each side writes its
answers (every aggregation's table, written inside the timed part) to Parquet; the benchmark compares them table by table and
exits 1 when they differ. Results go to benchmarks/results/analytics-<UTC time>.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
SLICE_OPERATIONS = 1_000_000  # lines per slice, of each kind
SLICE_ROOMS = 150_000  # the simulator averages about 7 operations per room

PANDAS_SIDE = r'''
import sys, time
from pathlib import Path
from analytics import transforms as t
from analytics.loaders import load_inputs
data_dir, answers = Path(sys.argv[1]), Path(sys.argv[2])
started = time.perf_counter()
data = load_inputs([data_dir / "insights-logs-roomsoperational", data_dir / "eventgrid-calls.jsonl"], progress=False)
loaded = time.perf_counter()
ops, rows = data.operations, data.attendance
tables = {
    "success_rate": t.success_rate(ops), "volume_by_operation": t.volume_by_operation(ops),
    "volume_by_response_code": t.volume_by_response_code(ops), "volume_by_version": t.volume_by_version(ops),
    "result_counts": t.result_counts(ops), "version_summary": t.version_summary(ops),
    "recent_errors": t.recent_errors(ops), "error_hot_spots": t.error_hot_spots(ops, top=len(ops)),
    "calls": t.calls(rows), "peak_concurrency": t.peak_concurrency(rows),
}
answers.mkdir(parents=True, exist_ok=True)
for name, frame in tables.items():
    frame.to_parquet(answers / f"{name}.parquet", index=False)
done = time.perf_counter()
print(f"{loaded - started:.3f} {done - loaded:.3f}")
'''

# The same definitions as analytics.transforms and analytics.calling, in SQL.
DUCKDB_SIDE = r'''
import sys, time
from pathlib import Path
import duckdb
data_dir, answers = Path(sys.argv[1]), Path(sys.argv[2])
started = time.perf_counter()
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute("SET enable_progress_bar = false")
con.execute("SET TimeZone = 'UTC'")
ops_glob = str(data_dir / "insights-logs-roomsoperational" / "**" / "PT1H.json")
con.execute(f"""
CREATE TABLE ops AS SELECT CAST(time AS TIMESTAMPTZ) AS TimeGenerated, correlationId AS CorrelationId,
  operationName AS OperationName, operationVersion AS OperationVersion, resultType AS ResultType,
  resultSignature AS ResultSignature, durationMs AS DurationMs, properties.RoomId AS RoomId,
  properties.RoomLifespan AS RoomLifespan, properties.AddedRoomParticipantsCount AS Added,
  properties.UpsertedRoomParticipantsCount AS Upserted, properties.RemovedRoomParticipantsCount AS Removed,
  properties.PstnDialOutEnabled AS Pstn
FROM read_json('{ops_glob}', format='newline_delimited', columns={{
  time: 'VARCHAR', correlationId: 'VARCHAR', operationName: 'VARCHAR', operationVersion: 'VARCHAR',
  resultType: 'VARCHAR', resultSignature: 'VARCHAR', durationMs: 'DOUBLE',
  properties: 'STRUCT(RoomId VARCHAR, RoomLifespan BIGINT, AddedRoomParticipantsCount BIGINT,
    UpsertedRoomParticipantsCount BIGINT, RemovedRoomParticipantsCount BIGINT, PstnDialOutEnabled BOOLEAN)'}})
""")
events_file = str(data_dir / "eventgrid-calls.jsonl")
con.execute(f"""
CREATE TABLE events AS SELECT replace(eventType, 'Microsoft.Communication.', '') AS EventType,
  CAST(eventTime AS TIMESTAMPTZ) AS EventTime, data.correlationId AS CorrelationId, data.room.id AS RoomId,
  data.participantId AS ParticipantId, data."user".communicationIdentifier.rawId AS Identifier,
  data.callDurationInSeconds AS CallDuration
FROM read_json('{events_file}', format='newline_delimited', columns={{
  eventType: 'VARCHAR', eventTime: 'VARCHAR',
  data: 'STRUCT(correlationId VARCHAR, room STRUCT(id VARCHAR), participantId VARCHAR,
    "user" STRUCT(communicationIdentifier STRUCT(rawId VARCHAR)), callDurationInSeconds DOUBLE)'}})
WHERE eventType LIKE 'Microsoft.Communication.Call%' AND data.correlationId IS NOT NULL
""")
loaded = time.perf_counter()
counts = "SELECT coalesce({0}, '(none)') AS {0}, count(*) AS Count FROM ops GROUP BY ALL"
queries = {
  "success_rate": counts.format("ResultType"), "volume_by_operation": counts.format("OperationName"),
  "volume_by_response_code": counts.format("ResultSignature"), "volume_by_version": counts.format("OperationVersion"),
  "result_counts": """SELECT coalesce(OperationName, '') AS OperationName, coalesce(OperationVersion, '') AS OperationVersion,
      coalesce(ResultType, '') AS ResultType, coalesce(ResultSignature, '') AS ResultSignature, count(*) AS Count
      FROM ops GROUP BY ALL""",
  "version_summary": """SELECT OperationVersion, count(DISTINCT nullif(RoomId, '')) AS TotalRoomCount,
      avg(Added) AS AvgAddedParticipantsCount, avg(Removed) AS AvgRemovedParticipantsCount,
      avg(Upserted) AS AvgUpsertedParticipantsCount, avg(RoomLifespan) AS AvgRoomLifespan,
      count(*) FILTER (Pstn) AS SumPstnDialoutEnabled FROM ops GROUP BY ALL""",
  "recent_errors": """SELECT TimeGenerated, OperationName, OperationVersion, ResultSignature FROM ops
      WHERE ResultType = 'Failed' ORDER BY TimeGenerated DESC LIMIT 100""",
  "error_hot_spots": """SELECT OperationName, ResultSignature, date_trunc('hour', TimeGenerated) AS Hour,
      count(*) AS Failures FROM ops WHERE ResultType = 'Failed' GROUP BY ALL""",
}
# Connections: one per (call, participant id or else user); a call's end is its last CallEnded, else
# start + duration, else its last leave; a connection without a leave ends with its call.
con.execute("""
CREATE TEMP TABLE connections AS SELECT CorrelationId, max(ParticipantId) AS ParticipantId,
    first(Identifier ORDER BY EventType <> 'CallParticipantAdded') AS Identifier,
    min(EventTime) FILTER (EventType = 'CallParticipantAdded') AS JoinedAt,
    max(EventTime) FILTER (EventType = 'CallParticipantRemoved') AS LeftAt
  FROM events WHERE EventType IN ('CallParticipantAdded', 'CallParticipantRemoved')
    AND coalesce(ParticipantId, Identifier) IS NOT NULL
  GROUP BY CorrelationId, coalesce(ParticipantId, Identifier)""")
con.execute("""
CREATE TEMP TABLE call_rows AS WITH per_call AS (
    SELECT CorrelationId, first(RoomId) AS RoomId, min(EventTime) FILTER (EventType = 'CallStarted') AS Started,
      max(EventTime) FILTER (EventType = 'CallEnded') AS Ended,
      last(CallDuration ORDER BY EventTime) FILTER (EventType = 'CallEnded' AND CallDuration IS NOT NULL) AS Duration
    FROM events GROUP BY CorrelationId),
  spans AS (SELECT CorrelationId, min(JoinedAt) AS FirstJoin, max(LeftAt) AS LastLeave FROM connections GROUP BY ALL),
  starts AS (SELECT p.*, coalesce(Started, Ended - to_microseconds(CAST(Duration * 1e6 AS BIGINT)), FirstJoin) AS CallStart,
      LastLeave FROM per_call p LEFT JOIN spans USING (CorrelationId))
  SELECT CorrelationId, RoomId, CallStart AS CallStartTime,
    coalesce(Ended, CallStart + to_microseconds(CAST(Duration * 1e6 AS BIGINT)), LastLeave) AS CallEndTime
  FROM starts""")
queries["calls"] = """SELECT c.CorrelationId, c.RoomId, c.CallStartTime, c.CallEndTime,
    epoch(c.CallEndTime - c.CallStartTime) AS CallDuration, count(n.ParticipantId) AS Connections,
    count(DISTINCT coalesce(n.Identifier, n.ParticipantId)) AS Participants
  FROM call_rows c LEFT JOIN connections n USING (CorrelationId) GROUP BY ALL"""
queries["peak_concurrency"] = """WITH steps AS (
    SELECT n.CorrelationId, JoinedAt AS t, 1 AS d FROM connections n WHERE ParticipantId IS NOT NULL AND JoinedAt IS NOT NULL
    UNION ALL
    SELECT n.CorrelationId, coalesce(LeftAt, c.CallEndTime) AS t, -1 AS d FROM connections n JOIN call_rows c USING (CorrelationId)
    WHERE ParticipantId IS NOT NULL AND JoinedAt IS NOT NULL AND coalesce(LeftAt, c.CallEndTime) IS NOT NULL),
  levels AS (SELECT CorrelationId, t, sum(d) OVER (PARTITION BY CorrelationId ORDER BY t, d ROWS UNBOUNDED PRECEDING) AS level
    FROM steps)
  SELECT CorrelationId, max(level) AS PeakParticipants, arg_min(t, (-level, t)) AS PeakAt FROM levels GROUP BY ALL"""
answers.mkdir(parents=True, exist_ok=True)
for name, query in queries.items():
    con.execute(f"COPY ({query}) TO '{answers / (name + '.parquet')}' (FORMAT PARQUET)")
done = time.perf_counter()
print(f"{loaded - started:.3f} {done - loaded:.3f}")
'''

# How each answer table is compared: key columns, value columns (floats within 1e-9 relative).
ANSWERS = {
    "success_rate": (["ResultType"], ["Count"]),
    "volume_by_operation": (["OperationName"], ["Count"]),
    "volume_by_response_code": (["ResultSignature"], ["Count"]),
    "volume_by_version": (["OperationVersion"], ["Count"]),
    "result_counts": (["OperationName", "OperationVersion", "ResultType", "ResultSignature"], ["Count"]),
    "version_summary": (["OperationVersion"], ["TotalRoomCount", "AvgAddedParticipantsCount",
                                               "AvgRemovedParticipantsCount", "AvgUpsertedParticipantsCount",
                                               "AvgRoomLifespan", "SumPstnDialoutEnabled"]),
    "recent_errors": (["TimeGenerated", "OperationName", "OperationVersion", "ResultSignature"], []),
    "error_hot_spots": (["OperationName", "ResultSignature", "Hour"], ["Failures"]),
    "calls": (["CorrelationId"], ["RoomId", "CallStartTime", "CallEndTime", "CallDuration", "Connections",
                                  "Participants"]),
    "peak_concurrency": (["CorrelationId"], ["PeakParticipants", "PeakAt"]),
}


def compare_answers(pandas_dir: Path, duckdb_dir: Path) -> dict[str, str]:
    """Table by table: "same", or what differs between the two sides' answers."""
    import numpy as np
    import pandas as pd

    verdicts = {}
    for name, (keys, values) in ANSWERS.items():
        frames = []
        for folder in (pandas_dir, duckdb_dir):
            frame = pd.read_parquet(folder / f"{name}.parquet")[keys + values]
            for column in frame.columns:
                if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
                    frame[column] = frame[column].dt.tz_convert("UTC").astype("datetime64[us, UTC]")
                elif frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column].dtype) \
                        or isinstance(frame[column].dtype, pd.CategoricalDtype):
                    frame[column] = frame[column].astype("string")
                elif pd.api.types.is_numeric_dtype(frame[column].dtype):
                    frame[column] = frame[column].astype("float64")
            frames.append(frame.sort_values(keys, ignore_index=True))
        ours, theirs = frames
        if len(ours) != len(theirs):
            verdicts[name] = f"{len(ours)} rows against {len(theirs)}"
            continue
        problems = []
        for column in keys + values:
            left, right = ours[column], theirs[column]
            if pd.api.types.is_float_dtype(left.dtype):
                same = np.isclose(left.to_numpy(), right.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True)
            else:
                same = ((left == right) | (left.isna() & right.isna())).fillna(False).to_numpy(dtype=bool)
            if not same.all():
                first = int(np.flatnonzero(~same)[0])
                problems.append(f"{column}: {int((~same).sum())} rows differ, e.g. {left.iloc[first]!r} vs "
                                f"{right.iloc[first]!r} ({dict(ours.loc[first, keys])})")
        verdicts[name] = "same" if not problems else "; ".join(problems)
    return verdicts


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def measure(command: list[str], label: str) -> dict:
    """Wall time and peak RSS (MiB) of one child process (/usr/bin/time -v), with the load average around it."""
    before = load_average()
    full = ["/usr/bin/time", "-v", *command] if Path("/usr/bin/time").exists() else command
    started = time.perf_counter()
    result = subprocess.run(full, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{label} failed ({result.returncode}): {result.stderr[-3000:]}")
    peak, cpu = None, 0.0
    for line in result.stderr.splitlines():
        if "Maximum resident set size" in line:
            peak = round(int(line.rsplit(":", 1)[1]) / 1024, 1)
        elif line.strip().startswith(("User time (seconds)", "System time (seconds)")):
            cpu += float(line.rsplit(":", 1)[1])
    return {"wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "peak_rss_mib": peak,
            "load_average_before": before, "load_average_after": load_average(), "stdout": result.stdout.strip()}


def generate(data: Path, work: Path, scale: int, seed: int, days: int) -> float:
    """Write `scale` simulator slices into `data` (hourly files and the event file appended slice by slice)."""
    started = time.perf_counter()
    data.mkdir(parents=True, exist_ok=True)
    for number in range(scale):
        part = work / f"slice-{number}"
        shutil.rmtree(part, ignore_errors=True)
        print(f"  slice {number + 1} of {scale} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "analytics", "simulate", "--seed", str(seed + number), "--rooms",
                        str(SLICE_ROOMS), "--days", str(days), "--out", str(part), "--format",
                        "diagnostic,eventgrid,roster", "--limit", str(SLICE_OPERATIONS)], cwd=ROOT, check=True)
        for source in sorted(p for p in part.rglob("*") if p.is_file()):
            target = data / source.relative_to(part)
            target.parent.mkdir(parents=True, exist_ok=True)
            with source.open("rb") as reader, target.open("ab") as writer:
                shutil.copyfileobj(reader, writer, 16 * 1024 * 1024)
        shutil.rmtree(part)
    return round(time.perf_counter() - started, 1)


def count_lines(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with path.open("rb") as handle:
            while block := handle.read(64 * 1024 * 1024):
                total += block.count(b"\n")
    return total


def side(run: dict) -> dict:
    load, aggregate = run.pop("stdout").splitlines()[-1].split()
    return {**run, "load_seconds": float(load), "aggregate_seconds": float(aggregate)}


def mean(runs: list[dict], key: str) -> float:
    return round(sum(run[key] for run in runs) / len(runs), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.analytics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1,
                        help="slices of 1,000,000 operation lines + 1,000,000 call events (default 1; 10 for 10M + 10M)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the two sides (default 2)")
    parser.add_argument("--report-runs", type=int, default=2, help="runs of the full report (default 2)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--work", type=Path, help="folder for data, answers and the report (default: a temporary one, "
                                                  "removed afterwards)")
    parser.add_argument("--reuse-data", action="store_true", help="with --work: reuse data generated by an earlier run")
    parser.add_argument("--results", type=Path, help="results file (default benchmarks/results/analytics-<UTC time>.json)")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    started_at = datetime.now(timezone.utc)
    work = args.work or Path(tempfile.mkdtemp(prefix="anteroom-analytics-bench-"))
    data = work / "data"
    python = sys.executable
    try:
        generated = None
        if not (args.reuse_data and data.exists()):
            shutil.rmtree(data, ignore_errors=True)
            print(f"generating {args.scale} slice(s) of 1M operation lines + 1M call events in {data} ...",
                  file=sys.stderr)
            generated = generate(data, work, args.scale, args.seed, args.days)
        op_files = sorted((data / "insights-logs-roomsoperational").rglob("PT1H.json"))
        inputs = {"operation_lines": count_lines(op_files), "operation_files": len(op_files),
                  "call_event_lines": count_lines([data / "eventgrid-calls.jsonl"]),
                  "roster_lines": count_lines([data / "rooms-participants.jsonl"]),
                  "bytes": sum(p.stat().st_size for p in data.rglob("*") if p.is_file()),
                  "generate_wall_seconds": generated}
        print(json.dumps(inputs), file=sys.stderr)

        runs: dict[str, list[dict]] = {"pandas": [], "duckdb": []}
        order = [name for round_ in range(args.rounds)
                 for name in (("duckdb", "pandas") if round_ % 2 == 0 else ("pandas", "duckdb"))]
        for name in order:
            print(f"{name} ...", file=sys.stderr)
            script = PANDAS_SIDE if name == "pandas" else DUCKDB_SIDE
            runs[name].append(side(measure([python, "-c", script, str(data), str(work / f"answers-{name}")], name)))
            print(f"  {runs[name][-1]}", file=sys.stderr)
        verdicts = compare_answers(work / "answers-pandas", work / "answers-duckdb")
        reports = []
        for number in range(args.report_runs):
            print("full report ...", file=sys.stderr)
            shutil.rmtree(work / "report", ignore_errors=True)
            run = measure([python, "-m", "analytics", "report", str(data), "--out", str(work / "report"),
                           "--no-progress"], "report")
            run.pop("stdout")
            reports.append(run)
            print(f"  {run}", file=sys.stderr)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    pandas_wall, duckdb_wall = mean(runs["pandas"], "wall_seconds"), mean(runs["duckdb"], "wall_seconds")
    pandas_peak = max(run["peak_rss_mib"] or 0 for run in runs["pandas"])
    duckdb_peak = max(run["peak_rss_mib"] or 0 for run in runs["duckdb"])
    summary = {
        "started": started_at.isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.analytics", *argv]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                    "packages": _versions()},
        "input": inputs,
        "pandas": {"wall_seconds": pandas_wall, "peak_rss_mib": pandas_peak,
                   "load_seconds": mean(runs["pandas"], "load_seconds"),
                   "aggregate_seconds": mean(runs["pandas"], "aggregate_seconds"),
                   "cpu_seconds": mean(runs["pandas"], "cpu_seconds"), "runs": runs["pandas"]},
        "duckdb": {"wall_seconds": duckdb_wall, "peak_rss_mib": duckdb_peak,
                   "load_seconds": mean(runs["duckdb"], "load_seconds"),
                   "aggregate_seconds": mean(runs["duckdb"], "aggregate_seconds"),
                   "cpu_seconds": mean(runs["duckdb"], "cpu_seconds"), "runs": runs["duckdb"]},
        "report_end_to_end": {"wall_seconds": mean(reports, "wall_seconds") if reports else None,
                              "peak_rss_mib": max((run["peak_rss_mib"] or 0 for run in reports), default=None),
                              "runs": reports},
        "ratio_pandas_to_duckdb_wall": round(pandas_wall / duckdb_wall, 2),
        "ratio_pandas_to_duckdb_cpu": round(mean(runs["pandas"], "cpu_seconds") / mean(runs["duckdb"], "cpu_seconds"), 2),
        "ratio_pandas_to_duckdb_peak_rss": round(pandas_peak / duckdb_peak, 2) if duckdb_peak else None,
        "answers": verdicts,
        "same_answers": all(verdict == "same" for verdict in verdicts.values()),
    }
    path = args.results or RESULTS / f"analytics-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({key: value for key, value in summary.items() if key not in ("machine",)}, indent=2, default=str))
    print(f"results: {path}")
    return 0 if summary["same_answers"] else 1


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("pandas", "pyarrow", "numpy", "duckdb", "orjson", "matplotlib"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


if __name__ == "__main__":
    sys.exit(main())
