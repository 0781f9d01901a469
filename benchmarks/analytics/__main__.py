"""Run the analytics benchmark: `python -m benchmarks.analytics [--operations N] [--events N] [--work DIR]`.

Generates operation logs (diagnostic-settings JSON lines, hourly PT1H.json tree) and Event Grid call
events (JSON lines) with the simulator, then measures in child processes (wall time, peak RSS):
1. the full report end to end (`python -m analytics report`),
2. the pandas loaders plus the report's aggregations, without figures or files,
3. the same aggregations in DuckDB over the same files.
Prints a summary and writes it as JSON (default benchmarks/results/analytics.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROOMS_PER_MILLION_OPERATIONS = 150_000  # the simulator averages about 7 operations per room

PANDAS_AGGREGATIONS = r'''
import sys, time
from pathlib import Path
from analytics import transforms as t
from analytics.loaders import load_inputs
work = Path(sys.argv[1])
started = time.perf_counter()
data = load_inputs([work / "insights-logs-roomsoperational", work / "eventgrid-calls.jsonl"], progress=False)
loaded = time.perf_counter()
ops, rows = data.operations, data.attendance
results = [t.success_rate(ops), t.volume_by_operation(ops), t.volume_by_response_code(ops), t.volume_by_version(ops),
           t.result_counts(ops), t.version_summary(ops), t.recent_errors(ops), t.error_hot_spots(ops)]
calls = t.calls(rows)
results += [calls, t.peak_concurrency(rows)]
done = time.perf_counter()
print(f"{loaded - started:.3f} {done - loaded:.3f} {len(ops)} {len(calls)} {int(results[-1]['PeakParticipants'].max())}")
'''

DUCKDB_AGGREGATIONS = r'''
import sys, time
from pathlib import Path
import duckdb
work = Path(sys.argv[1])
started = time.perf_counter()
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute("SET enable_progress_bar = false")
ops_glob = str(work / "insights-logs-roomsoperational" / "**" / "PT1H.json")
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
events_file = str(work / "eventgrid-calls.jsonl")
con.execute(f"""
CREATE TABLE events AS SELECT DISTINCT ON (id) id, replace(eventType, 'Microsoft.Communication.', '') AS EventType,
  CAST(eventTime AS TIMESTAMPTZ) AS EventTime, data.correlationId AS CorrelationId, data.room.id AS RoomId,
  data.participantId AS ParticipantId, data."user".communicationIdentifier.rawId AS Identifier,
  data.callDurationInSeconds AS CallDuration
FROM read_json('{events_file}', format='newline_delimited', columns={{
  id: 'VARCHAR', eventType: 'VARCHAR', eventTime: 'VARCHAR',
  data: 'STRUCT(correlationId VARCHAR, room STRUCT(id VARCHAR), participantId VARCHAR,
    "user" STRUCT(communicationIdentifier STRUCT(rawId VARCHAR)), callDurationInSeconds DOUBLE)'}})
""")
loaded = time.perf_counter()
queries = [
  "SELECT ResultType, count(*) FROM ops GROUP BY ALL",
  "SELECT OperationName, count(*) FROM ops GROUP BY ALL",
  "SELECT ResultSignature, count(*) FROM ops GROUP BY ALL",
  "SELECT OperationVersion, count(*) FROM ops GROUP BY ALL",
  "SELECT OperationName, OperationVersion, ResultType, ResultSignature, count(*) AS Count FROM ops GROUP BY ALL ORDER BY OperationName, Count DESC",
  "SELECT OperationVersion, count(DISTINCT RoomId), avg(Added), avg(Removed), avg(Upserted), avg(RoomLifespan), count_if(Pstn) FROM ops GROUP BY ALL",
  "SELECT TimeGenerated, OperationName, OperationVersion, ResultSignature FROM ops WHERE ResultType = 'Failed' ORDER BY TimeGenerated DESC LIMIT 100",
  "SELECT OperationName, ResultSignature, date_trunc('hour', TimeGenerated) AS Hour, count(*) AS Failures FROM ops WHERE ResultType = 'Failed' GROUP BY ALL ORDER BY Failures DESC LIMIT 20",
  """SELECT CorrelationId, any_value(RoomId), min(EventTime) FILTER (EventType = 'CallStarted'),
       max(EventTime) FILTER (EventType = 'CallEnded'), max(CallDuration),
       count(DISTINCT ParticipantId), count(DISTINCT Identifier) FROM events GROUP BY CorrelationId""",
  """WITH steps AS (
       SELECT CorrelationId, EventTime AS t, CASE EventType WHEN 'CallParticipantAdded' THEN 1 ELSE -1 END AS d
       FROM events WHERE EventType IN ('CallParticipantAdded', 'CallParticipantRemoved')),
     running AS (SELECT CorrelationId, t, sum(d) OVER (PARTITION BY CorrelationId ORDER BY t, d
                 ROWS UNBOUNDED PRECEDING) AS level FROM steps)
     SELECT CorrelationId, max(level) AS peak FROM running GROUP BY CorrelationId""",
]
results = [con.execute(q).fetchall() for q in queries]
done = time.perf_counter()
ops_count = con.execute("SELECT count(*) FROM ops").fetchone()[0]
print(f"{loaded - started:.3f} {done - loaded:.3f} {ops_count} {len(results[-2])} {max(r[1] for r in results[-1])}")
'''


def peak_from_time_v(stderr: str) -> float | None:
    for line in stderr.splitlines():
        if "Maximum resident set size" in line:
            return round(int(line.rsplit(":", 1)[1]) / 1024, 1)
    return None


def measure(command: list[str], label: str) -> dict:
    """Wall time and peak RSS (MiB) of one child process, via /usr/bin/time -v when present."""
    use_time = Path("/usr/bin/time").exists()
    full = ["/usr/bin/time", "-v", *command] if use_time else command
    started = time.perf_counter()
    result = subprocess.run(full, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{label} failed ({result.returncode}): {result.stderr[-3000:]}")
    peak = peak_from_time_v(result.stderr) if use_time else None
    if peak is None:
        peak = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return {"wall_seconds": round(wall, 2), "peak_rss_mib": peak, "stdout": result.stdout.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.analytics", description=__doc__)
    parser.add_argument("--operations", type=int, default=1_000_000, help="operation-log lines (default 1,000,000)")
    parser.add_argument("--events", type=int, default=1_000_000, help="call events (default 1,000,000)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--work", type=Path, help="folder for the generated data (default: a temporary one, removed)")
    parser.add_argument("--reuse-data", action="store_true", help="with --work: keep data generated by an earlier run")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "analytics.json")
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="anteroom-analytics-bench-"))
    python = sys.executable
    rooms = max(1, args.operations * ROOMS_PER_MILLION_OPERATIONS // 1_000_000)
    try:
        print(f"generating {args.operations:,} operation lines and {args.events:,} call events in {work} ...",
              file=sys.stderr)
        data = work / "data"
        generate = {"wall_seconds": None} if args.reuse_data and data.exists() else measure([
            python, "-m", "analytics", "simulate", "--seed", str(args.seed), "--rooms", str(rooms),
                            "--days", str(args.days), "--out", str(work / "data"), "--format", "diagnostic,eventgrid,roster",
                            "--limit", str(max(args.operations, args.events))], "simulate")
        operation_lines = sum(p.read_bytes().count(b"\n") for p in (data / "insights-logs-roomsoperational").rglob("PT1H.json"))
        event_lines = (data / "eventgrid-calls.jsonl").read_bytes().count(b"\n")
        if operation_lines < args.operations or event_lines < args.events:
            print(f"note: generated {operation_lines:,} operations and {event_lines:,} events", file=sys.stderr)
        print("full report ...", file=sys.stderr)
        report = measure([python, "-m", "analytics", "report", str(data), "--out", str(work / "report"),
                          "--no-progress"], "report")
        print("pandas aggregations ...", file=sys.stderr)
        pandas_run = measure([python, "-c", PANDAS_AGGREGATIONS, str(data)], "pandas aggregations")
        print("duckdb aggregations ...", file=sys.stderr)
        duckdb_run = measure([python, "-c", DUCKDB_AGGREGATIONS, str(data)], "duckdb aggregations")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    def parts(run: dict) -> dict:
        load, aggregate, ops, calls, peak = run.pop("stdout").splitlines()[-1].split()
        return {**run, "load_seconds": float(load), "aggregate_seconds": float(aggregate), "operations": int(ops),
                "calls": int(calls), "max_peak_concurrency": int(peak)}

    pandas_result, duckdb_result = parts(pandas_run), parts(duckdb_run)
    summary = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "command": "python -m benchmarks.analytics " + " ".join(argv if argv is not None else sys.argv[1:]),
        "input": {"operation_lines": operation_lines, "call_event_lines": event_lines, "rooms": rooms,
                  "generate_wall_seconds": generate["wall_seconds"]},
        "report_end_to_end": {k: v for k, v in report.items() if k != "stdout"},
        "pandas": pandas_result,
        "duckdb": duckdb_result,
        # The target's ratio: the same aggregations over frames already loaded, pandas vs DuckDB.
        "ratio_pandas_to_duckdb_aggregate": round(pandas_result["aggregate_seconds"] / duckdb_result["aggregate_seconds"], 2),
        "ratio_pandas_to_duckdb_wall": round(pandas_result["wall_seconds"] / duckdb_result["wall_seconds"], 2),
        "ratio_pandas_to_duckdb_load_plus_aggregate": round(
            (pandas_result["load_seconds"] + pandas_result["aggregate_seconds"])
            / (duckdb_result["load_seconds"] + duckdb_result["aggregate_seconds"]), 2),
        "same_answers": pandas_result["operations"] == duckdb_result["operations"]
        and pandas_result["calls"] == duckdb_result["calls"]
        and pandas_result["max_peak_concurrency"] == duckdb_result["max_peak_concurrency"],
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
