"""Rooms API throughput and latency through the official SDK and the local host, against raw Table calls on the same Azurite."""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Sequence

from benchmarks.stats import percentile

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OPERATIONS = ("list", "get", "update", "create")  # list first: it scans the table, which creates grow
PARTICIPANTS_PER_REQUEST = 3
ROOM_ROW = "room"
VALIDITY = timedelta(days=180)  # ACS's default validity, which the SDK-created rooms also get
ROLES = ("Presenter", "Attendee")


# -- measuring ------------------------------------------------------------------------------------
@dataclass
class PhaseResult:
    """What one timed phase of one side did: completed calls, failures, wall time and call latencies."""

    ops: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str | None = None

    def merge(self, other: "PhaseResult") -> None:
        self.ops += other.ops
        self.errors += other.errors
        self.elapsed += other.elapsed
        self.latencies.extend(other.latencies)
        self.first_error = self.first_error or other.first_error

    def summary(self) -> dict:
        ordered = sorted(self.latencies)
        return {
            "ops": self.ops,
            "errors": self.errors,
            "seconds": round(self.elapsed, 3),
            "ops_per_s": round(self.ops / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(percentile(ordered, 50) * 1000, 2),
            "p99_ms": round(percentile(ordered, 99) * 1000, 2),
            "first_error": self.first_error,
        }


# One timed phase of one side ("raw" or "sdk") for so many seconds: its result per operation.
Phase = Callable[[str, float], dict[str, PhaseResult]]


def run_phase(calls: Sequence[Callable[[], object]], duration: float, max_ops: int) -> PhaseResult:
    """Run each call in a loop on its own thread for `duration` seconds (or `max_ops` calls in all)."""
    start = threading.Barrier(len(calls) + 1)
    per_thread = [PhaseResult() for _ in calls]
    budget = iter(range(max_ops))  # next() on a range iterator is atomic, so threads share one bound

    def loop(call: Callable[[], object], result: PhaseResult) -> None:
        start.wait()
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline and next(budget, None) is not None:
            began = time.perf_counter()
            try:
                call()
            except Exception as error:  # counted and reported: a failing side must not look fast
                result.errors += 1
                result.first_error = result.first_error or f"{type(error).__name__}: {error}"[:300]
                continue
            result.latencies.append(time.perf_counter() - began)
            result.ops += 1

    threads = [threading.Thread(target=loop, args=pair, daemon=True) for pair in zip(calls, per_thread)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    total = PhaseResult()
    for result in per_thread:
        total.merge(result)
    total.elapsed = time.perf_counter() - began
    return total


# -- the two sides of each operation -------------------------------------------------------------
def participant_ids(tag: str) -> list[str]:
    return [f"8:acs:bench-{tag}-{index}" for index in range(PARTICIPANTS_PER_REQUEST)]


def room_entity(room_id: str, now: datetime, generation: str, roles: Sequence[str]) -> dict:
    """The room entity as shared/rooms/store.py lays it out (TableRoomsStore._room_entity)."""
    return {
        "PartitionKey": room_id,
        "RowKey": ROOM_ROW,
        "CreatedAt": now,
        "ValidFrom": now,
        "ValidUntil": now + VALIDITY,
        "PstnDialOutEnabled": False,
        "Deleted": False,
        "Generation": generation,
        "Presenters": roles.count("Presenter"),
        "Attendees": roles.count("Attendee"),
        "Consumers": 0,
        "Collaborators": 0,
        "Retired": "[]",
    }


def roster_upsert(room_id: str, generation: str, raw_id: str, role: str) -> tuple:
    from azure.data.tables import UpdateMode

    entity = {"PartitionKey": room_id, "RowKey": f"p{generation}|{raw_id}", "Role": role}
    return ("upsert", entity, {"mode": UpdateMode.REPLACE})


@dataclass
class Slot:
    """One benchmark thread's own clients and rooms: threads share no connection pool and no room."""

    index: int
    rooms_client: object  # azure.communication.rooms.RoomsClient
    table: object  # azure.data.tables.TableClient on the app's rooms table
    participants: list[str]
    read_room_ids: list[str] = field(default_factory=list)  # rooms both sides read, offset per slot
    sdk_roster_room: str = ""  # rooms whose roster each side flips, never the same room for both
    raw_roster_room: str = ""
    flips: dict[str, int] = field(default_factory=dict)
    reads: int = 0

    def next_read_room(self) -> str:
        self.reads += 1
        return self.read_room_ids[(self.index * 7 + self.reads) % len(self.read_room_ids)]

    def next_role(self, room_id: str) -> str:
        # Alternating every participant's role makes each update a real change: the app skips the
        # transaction when the roster would stay the same.
        self.flips[room_id] = self.flips.get(room_id, 0) + 1
        return ROLES[self.flips[room_id] % 2]


def sdk_create(slot: Slot) -> str:
    return slot.rooms_client.create_room(participants=sdk_participants(slot.participants)).id


def raw_create(slot: Slot) -> None:
    """One transaction: the room entity plus its roster rows (TableRoomsStore.create's write)."""
    from shared.rooms.model import new_room_id

    now = datetime.now(timezone.utc)
    generation = secrets.token_hex(4)
    room_id = new_room_id(now)
    roles = ["Attendee"] * len(slot.participants)
    operations = [("create", room_entity(room_id, now, generation, roles))]
    operations += [roster_upsert(room_id, generation, raw_id, role) for raw_id, role in zip(slot.participants, roles)]
    slot.table.submit_transaction(operations)


def sdk_get(slot: Slot) -> None:
    slot.rooms_client.get_room(room_id=slot.next_read_room())


def raw_get(slot: Slot) -> None:
    """One point read of the room entity (TableRoomsStore.get)."""
    slot.table.get_entity(slot.next_read_room(), ROOM_ROW)


def sdk_update(slot: Slot) -> None:
    role = slot.next_role(slot.sdk_roster_room)
    slot.rooms_client.add_or_update_participants(
        room_id=slot.sdk_roster_room, participants=sdk_participants(slot.participants, role)
    )


def raw_update(slot: Slot) -> None:
    """Read the room, query its roster generation, commit changed rows + If-Match room update in one transaction."""
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode

    room_id, role = slot.raw_roster_room, slot.next_role(slot.raw_roster_room)
    room = slot.table.get_entity(room_id, ROOM_ROW)
    generation = room["Generation"]
    prefix = f"p{generation}|"
    roster = {
        entity["RowKey"][len(prefix):]: entity["Role"]
        for entity in slot.table.query_entities(
            "PartitionKey eq @pk and RowKey gt @start and RowKey lt @high",
            parameters={"pk": room_id, "start": prefix, "high": f"p{generation}}}"},
            select=["RowKey", "Role"],
            results_per_page=1000,
        )
    }
    new = {**roster, **{raw_id: role for raw_id in slot.participants}}
    changes = [roster_upsert(room_id, generation, raw_id, role) for raw_id, role in new.items() if roster.get(raw_id) != role]
    updated = dict(room)
    updated["Presenters"] = list(new.values()).count("Presenter")
    updated["Attendees"] = list(new.values()).count("Attendee")
    room_op = ("update", updated, {
        "mode": UpdateMode.REPLACE, "etag": room.metadata["etag"], "match_condition": MatchConditions.IfNotModified,
    })
    slot.table.submit_transaction([room_op, *changes])


def sdk_list(slot: Slot) -> None:
    page = next(slot.rooms_client.list_rooms().by_page())
    if not list(page):
        raise RuntimeError("the first page of rooms is empty")


def raw_list(slot: Slot, page_size: int) -> None:
    """The active-rooms filter, one page of page_size + 1 entities (TableRoomsStore.active_rooms_page)."""
    entities = slot.table.query_entities(
        "RowKey eq @room and Deleted eq false and ValidUntil gt @now",
        parameters={"room": ROOM_ROW, "now": datetime.now(timezone.utc)},
        results_per_page=page_size + 1,
    )
    count = 0
    for _ in entities:
        count += 1
        if count > page_size:
            break
    if not count:
        raise RuntimeError("the filtered query found no rooms")


# -- the run ----------------------------------------------------------------------------------------
@dataclass
class Config:
    concurrency: list[int]
    operations: list[str]
    duration: float
    rounds: int
    warmup: float
    max_ops: int
    read_rooms: int
    output_dir: Path
    py_spy: Path | None


def parse_args(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api", description=__doc__)
    parser.add_argument("--concurrency", default="8,32", help="thread counts, comma separated (default 8,32)")
    parser.add_argument("--ops", default=",".join(OPERATIONS), help=f"operations (default {','.join(OPERATIONS)})")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per timed phase of one side (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="timed phases per side, alternating sides (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds per side first (default 1)")
    parser.add_argument("--max-ops", type=int, default=50_000, help="bound on calls per phase (default 50000)")
    parser.add_argument("--read-rooms", type=int, default=120, help="rooms seeded before the run (default 120)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--py-spy", type=Path, help="record the host with py-spy (speedscope JSON) during the run")
    args = parser.parse_args(argv)
    operations = [name.strip() for name in args.ops.split(",") if name.strip()]
    unknown = set(operations) - set(OPERATIONS)
    if unknown:
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    concurrency = [int(value) for value in args.concurrency.split(",")]
    if not all(0 < value <= 256 for value in concurrency) or args.duration > 60 or args.rounds > 20:
        parser.error("keep it bounded: 1-256 threads, at most 60 s per phase and 20 rounds")
    return Config(concurrency, operations, args.duration, args.rounds, args.warmup, args.max_ops,
                  args.read_rooms, args.output_dir, args.py_spy)


def sdk_participants(raw_ids: Sequence[str], role: str = "Attendee") -> list:
    from azure.communication.rooms import CommunicationUserIdentifier, RoomParticipant

    return [RoomParticipant(communication_identifier=CommunicationUserIdentifier(raw_id), role=role)
            for raw_id in raw_ids]


def operation_sides(operation: str, page_size: int) -> tuple[Callable[[Slot], object], Callable[[Slot], object]]:
    """(SDK-through-host call, raw Table baseline) of one operation."""
    return {
        "create": (sdk_create, raw_create),
        "get": (sdk_get, raw_get),
        "update": (sdk_update, raw_update),
        "list": (sdk_list, lambda slot: raw_list(slot, page_size)),
    }[operation]


def build_slots(service, count: int, table_name: str) -> list[Slot]:
    from azure.communication.rooms import RoomsClient
    from azure.data.tables import TableClient

    return [
        Slot(
            index=index,
            rooms_client=RoomsClient.from_connection_string(service.connection_string),
            table=TableClient.from_connection_string(service.storage_connection_string, table_name),
            participants=participant_ids(f"s{index}"),
        )
        for index in range(count)
    ]


def seed(slots: list[Slot], read_rooms: int) -> None:
    """Create, through the SDK so they are exactly what the app writes, the rooms to read and list and two roster rooms per slot."""
    count = read_rooms + 2 * len(slots)
    with ThreadPoolExecutor(max_workers=8) as pool:
        room_ids = list(pool.map(lambda index: sdk_create(slots[index % len(slots)]), range(count)))
    reads, rosters = room_ids[:read_rooms], room_ids[read_rooms:]
    for slot in slots:
        slot.read_room_ids = reads
        slot.sdk_roster_room, slot.raw_roster_room = rosters[2 * slot.index], rosters[2 * slot.index + 1]


def operation_phase(slots: list[Slot], operation: str, page_size: int, max_ops: int) -> Phase:
    """The phase of one operation for `measure`: each slot calls the chosen side in a loop on its own thread."""
    sdk_call, raw_call = operation_sides(operation, page_size)
    calls = {
        "raw": [(lambda slot=slot: raw_call(slot)) for slot in slots],
        "sdk": [(lambda slot=slot: sdk_call(slot)) for slot in slots],
    }
    return lambda side, seconds: {operation: run_phase(calls[side], seconds, max_ops)}


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid`, all its threads, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def host_cpu_counted(phase: Phase, pid: int, spent: dict[str, list[float]]) -> Phase:
    """`phase`, adding the host's CPU seconds and the completed calls of each timed SDK phase to `spent[operation]`.

    The first SDK phase is `measure`'s warm-up (connections opened, caches filled) and not counted.
    """
    sdk_phases = 0

    def counted(side: str, seconds: float) -> dict[str, PhaseResult]:
        nonlocal sdk_phases
        before = process_cpu_seconds(pid)
        results = phase(side, seconds)
        if side == "sdk":
            sdk_phases += 1
            if sdk_phases > 1:
                cpu = process_cpu_seconds(pid) - before
                for name, result in results.items():
                    totals = spent.setdefault(name, [0.0, 0.0])
                    totals[0] += cpu / len(results)
                    totals[1] += result.ops
        return results

    return counted


def measure(phase: Phase, operations: Sequence[str], concurrency: int, warmup: float, duration: float,
            rounds: int) -> list[dict]:
    """Warm both sides up, then alternate timed phases (raw, sdk, sdk, raw, ...) so drift and noise hit both.

    `phase(side, seconds)` runs one side ("raw" or "sdk") for that long and returns a result per
    operation it ran: one here, a join and a leave apart in benchmarks/calls.py. One row per operation.
    """
    for side in ("raw", "sdk"):
        phase(side, warmup)
    totals = {(side, name): PhaseResult() for side in ("raw", "sdk") for name in operations}
    per_round: dict[tuple[str, str], list[float]] = {key: [] for key in totals}
    for round_index in range(rounds):
        for side in ("raw", "sdk") if round_index % 2 == 0 else ("sdk", "raw"):
            for name, result in phase(side, duration).items():
                per_round[(side, name)].append(round(result.ops / result.elapsed, 1))
                totals[(side, name)].merge(result)
    rows = []
    for name in operations:
        raw, sdk = totals[("raw", name)].summary(), totals[("sdk", name)].summary()
        raw["rounds_ops_per_s"], sdk["rounds_ops_per_s"] = per_round[("raw", name)], per_round[("sdk", name)]
        rows.append({
            "operation": name,
            "concurrency": concurrency,
            "raw": raw,
            "sdk": sdk,
            "throughput_ratio": round(sdk["ops_per_s"] / raw["ops_per_s"], 3) if raw["ops_per_s"] else None,
            "p50_ratio": round(sdk["p50_ms"] / raw["p50_ms"], 2) if raw["p50_ms"] else None,
        })
    return rows


def format_table(rows: list[dict]) -> str:
    header = (f"{'operation':<9} {'threads':>7} | {'raw ops/s':>9} {'p50 ms':>7} {'p99 ms':>7} | "
              f"{'sdk ops/s':>9} {'p50 ms':>7} {'p99 ms':>7} | {'sdk/raw':>7} {'errors':>6}")
    lines = [header, "-" * len(header)]
    for row in rows:
        raw, sdk = row["raw"], row["sdk"]
        host_cpu = f" | host {row['host_cpu_ms_per_call']:.2f} ms CPU/call" if row.get("host_cpu_ms_per_call") else ""
        if row.get("loadavg"):
            host_cpu += f", load {' '.join(row['loadavg'])}"
        lines.append(
            f"{row['operation']:<9} {row['concurrency']:>7} | {raw['ops_per_s']:>9.1f} {raw['p50_ms']:>7.2f} "
            f"{raw['p99_ms']:>7.2f} | {sdk['ops_per_s']:>9.1f} {sdk['p50_ms']:>7.2f} {sdk['p99_ms']:>7.2f} | "
            f"{row['throughput_ratio'] or 0:>6.0%} {raw['errors'] + sdk['errors']:>6}{host_cpu}"
        )
    return "\n".join(lines)


def quiet_sdk_logging() -> None:
    """Keep the Azure SDKs' logging out of a run's output, which is its table."""
    # The SDKs log every request at INFO when logging is configured.
    logging.getLogger("azure").setLevel(logging.WARNING)
    # create_room serializes a naive utcnow() for Repeatability-First-Sent and warns about it on every
    # call; unconfigured logging would print each warning to stderr from inside the timed calls.
    logging.getLogger("azure.communication.rooms._generated._serialization").setLevel(logging.ERROR)


def machine() -> dict:
    from importlib.metadata import version

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in
                     ("azure-communication-rooms", "azure-data-tables", "azure-core", "azure-functions", "aiohttp")},
    }


def write_results(name: str, started: datetime, argv: Sequence[str], fields: dict, output_dir: Path) -> Path:
    """Write a run's results to `output_dir`/`name`-<UTC time>.json and say where.

    The file holds when the run started, its command (`python -m benchmarks.<name>` and `argv`), the
    machine, then `fields`.
    """
    report = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join([f"python -m benchmarks.{name}", *argv]),
        "machine": machine(),
        **fields,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {path}")
    return path


def start_py_spy(pid: int, output: Path) -> subprocess.Popen:
    executable = Path(sys.executable).with_name("py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(executable if executable.exists() else "py-spy"), "record", "--pid", str(pid), "--rate", "200",
         "--format", "speedscope", "--output", str(output)],
        stdout=subprocess.DEVNULL,
    )


def stop_py_spy(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)  # py-spy writes its profile when interrupted
    process.wait(timeout=60)


def run(config: Config) -> tuple[datetime, dict]:
    """Run the benchmark: when it started, and its settings and results for `write_results`."""
    from localdev.testing import local_service
    from shared.config.settings import Settings

    quiet_sdk_logging()
    started = datetime.now(timezone.utc)
    # The per-key throttle (6,000 requests a minute by default) is a policy, not a cost: left on, the
    # SDK side meets 429s and Retry-After back-offs after a few seconds at this load and the run
    # measures the throttle. benchmarks/soak.py turns it off the same way.
    with local_service(env={"ANTEROOM_THROTTLE_REQUESTS": "0"}) as service:
        os.environ["REQUESTS_CA_BUNDLE"] = service.ca_file
        settings = Settings.from_env(service.settings, served_at=service.base_url)
        slots = build_slots(service, max(config.concurrency), settings.table_name("Rooms"))
        seed(slots, config.read_rooms)
        host_pid = service.host.process.pid
        print(f"host pid {host_pid}, Azurite {service.storage_connection_string.split('TableEndpoint=')[1]}",
              file=sys.stderr)
        profiler = start_py_spy(host_pid, config.py_spy) if config.py_spy else None
        rows = []
        try:
            for operation in config.operations:
                for concurrency in config.concurrency:
                    spent: dict[str, list[float]] = {}
                    phase = host_cpu_counted(
                        operation_phase(slots[:concurrency], operation, settings.rooms_page_size, config.max_ops),
                        host_pid, spent)
                    rows += measure(phase, [operation], concurrency, config.warmup, config.duration, config.rounds)
                    cpu, ops = spent[operation]
                    rows[-1]["host_cpu_ms_per_call"] = round(cpu * 1000 / ops, 3) if ops else None
                    rows[-1]["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
                    print(format_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
        finally:
            if profiler is not None:
                stop_py_spy(profiler)
        host_output = service.host.output()
    return started, {
        "settings": {
            "duration_s": config.duration, "rounds": config.rounds, "warmup_s": config.warmup,
            "participants_per_request": PARTICIPANTS_PER_REQUEST, "rooms_page_size": settings.rooms_page_size,
            "seeded_rooms": config.read_rooms, "clients": "one RoomsClient and one TableClient per thread",
            "throttling": "off (ANTEROOM_THROTTLE_REQUESTS=0)",
        },
        "host_connection_pool_full_warnings": host_output.count("Connection pool is full"),
        "results": rows,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    config = parse_args(argv)
    started, fields = run(config)
    print(format_table(fields["results"]))
    write_results("api", started, argv, fields, config.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
