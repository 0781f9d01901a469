"""Command line: `python -m analytics report ...` and `python -m analytics simulate ...`."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone

from .app_logs import DEFAULT_TABLE_PREFIX
from .loaders import FORMATS, Dataset, load_inputs, load_table_storage, merge_datasets
from .readers import InputFormatError
from .report import ReportOptions, build_report, write_report
from .simulate import SIMULATION_FORMATS, simulate, write_formats


def _formats(values: Sequence[str]) -> list[str]:
    chosen: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name == "all":
                chosen.extend(SIMULATION_FORMATS)
            elif name:
                chosen.append(name)
    return list(dict.fromkeys(chosen))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analytics", description="Anteroom Rooms log analytics.")
    commands = parser.add_subparsers(dest="command", required=True)

    report = commands.add_parser("report", help="load logs and events, write report.html and tables/")
    report.add_argument("inputs", nargs="*", help="files or folders (searched recursively)")
    report.add_argument("--out", required=True, help="output folder")
    report.add_argument("--format", choices=FORMATS, help="force one input format for every file (default: detect)")
    storage = report.add_mutually_exclusive_group()
    storage.add_argument("--connection-string", help="also load our operation and call logs from Table storage")
    storage.add_argument("--account-url",
                         help="the same from the account's Table endpoint (https://<account>.table.core.windows.net), "
                              "signed in with DefaultAzureCredential (az login, azd auth login, a managed identity); "
                              "the identity needs Storage Table Data Reader")
    report.add_argument("--table-prefix", default=DEFAULT_TABLE_PREFIX,
                        help=f"the app's ANTEROOM_TABLE_PREFIX (default {DEFAULT_TABLE_PREFIX})")
    report.add_argument("--room-id", help="room for the drill-down (default: the busiest room)")
    report.add_argument("--late-minutes", type=float, default=5.0, help="late joiner threshold (default 5)")
    report.add_argument("--early-minutes", type=float, default=5.0, help="early leaver threshold (default 5)")
    report.add_argument("--no-progress", action="store_true", help="no progress bars")
    report.add_argument("--skip-bad-lines", action="store_true",
                        help="skip malformed lines and records with unreadable values instead of stopping; "
                             "how many were skipped, per file, is printed and shown in the report")

    sim = commands.add_parser("simulate", help="write seeded, realistic logs and events")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--rooms", type=int, default=200)
    sim.add_argument("--days", type=int, default=7)
    sim.add_argument("--start", default="2026-11-01T00:00:00Z", help="simulation start (ISO, UTC)")
    sim.add_argument("--out", required=True)
    sim.add_argument("--format", action="append", default=None,
                     help=f"one or more of {', '.join(SIMULATION_FORMATS)} or all (repeat or comma-separate; "
                          "default diagnostic,eventgrid,roster)")
    sim.add_argument("--limit", type=int, help="cap operation records and call events per format")
    return parser


def _report(args: argparse.Namespace) -> int:
    if not args.inputs and not args.connection_string and not args.account_url:
        print("error: give input files or folders, --connection-string or --account-url", file=sys.stderr)
        return 2
    started = time.perf_counter()
    datasets: list[Dataset] = []
    if args.inputs:
        datasets.append(load_inputs(args.inputs, input_format=args.format, progress=not args.no_progress,
                                    skip_bad_lines=args.skip_bad_lines))
    if args.connection_string or args.account_url:
        datasets.append(load_table_storage(args.connection_string, account_url=args.account_url,
                                           table_prefix=args.table_prefix))
    dataset = datasets[0] if len(datasets) == 1 else merge_datasets(datasets)
    loaded = time.perf_counter()
    for line in dataset.skipped:
        print(f"warning: {line}", file=sys.stderr)
    options = ReportOptions(room_id=args.room_id, late_minutes=args.late_minutes, early_minutes=args.early_minutes)
    files = write_report(build_report(dataset, options), args.out)
    print(f"{len(dataset.operations):,} operations, {len(dataset.attendance):,} attendance rows, "
          f"{len(dataset.roster):,} roster entries loaded in {loaded - started:.1f} s; "
          f"report written in {time.perf_counter() - loaded:.1f} s: {files[0]}", file=sys.stderr)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
    start = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
    formats = _formats(args.format or ["diagnostic,eventgrid,roster"])
    simulation = simulate(args.seed, args.rooms, args.days, start)
    files = write_formats(simulation, args.out, formats, args.seed, args.limit)
    print(f"{len(simulation.operations):,} operations, {len(simulation.calls):,} calls; "
          f"{len(files)} file(s) under {args.out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 for bad arguments or unreadable input)."""
    args = _parser().parse_args(argv)
    try:
        return _report(args) if args.command == "report" else _simulate(args)
    except (InputFormatError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
