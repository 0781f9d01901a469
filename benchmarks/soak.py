"""Soak: a mixed Rooms and room-call workload for minutes through N host processes on one Azurite, per-window figures and host memory."""
from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import requests

from benchmarks.api import machine, quiet_sdk_logging, sdk_participants
from benchmarks.stats import percentile

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "soak.json"
ROOT = Path(__file__).resolve().parents[1]
# Memory counts as flat when the last window's mean RSS is within this share of the first warm
# window's (the first window holds imports, caches and connection pools filling up, so it is skipped).
RSS_TOLERANCE = 0.10
PROCESS_SAMPLE_SECONDS = 1.0
# Answers the workload provokes on purpose (none today): (operation, status) pairs not counted as errors.
EXPECTED_REFUSALS: frozenset[tuple[str, int]] = frozenset()


# -- one worker's cycle ------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One finished request: when it ended (seconds since the start), what, how long, and the outcome."""

    at: float
    operation: str
    latency: float
    instance: int
    error: str | None = None


@dataclass
class Caller:
    raw_id: str
    token: str


@dataclass
class Worker:
    """Runs room life cycles in a loop, each request going to the next instance in turn."""

    index: int
    rooms_clients: list  # one azure.communication.rooms.RoomsClient per instance
    base_urls: list[str]
    callers: tuple[Caller, Caller]
    samples: list[Sample]
    started: float
    instances: Sequence[int] = ()  # which instances this phase uses (all by default)
    session: requests.Session = field(default_factory=requests.Session)
    turn: int = 0

    def _next_instance(self) -> int:
        chosen = self.instances[(self.index + self.turn) % len(self.instances)]
        self.turn += 1
        return chosen

    def _timed(self, operation: str, action: Callable[[int], object]) -> bool:
        instance = self._next_instance()
        began = time.perf_counter()
        error = None
        try:
            outcome = action(instance)
            if isinstance(outcome, requests.Response) and not 200 <= outcome.status_code < 300 \
                    and (operation, outcome.status_code) not in EXPECTED_REFUSALS:
                error = f"{outcome.status_code} {outcome.text[:200]}"
        except Exception as failure:  # an SDK call raises for every non-2xx answer
            status = getattr(failure, "status_code", None)
            if (operation, status) not in EXPECTED_REFUSALS:
                error = f"{type(failure).__name__}: {failure}"[:300]
        ended = time.perf_counter()
        self.samples.append(Sample(ended - self.started, operation, ended - began, instance, error))
        return error is None

    def _call(self, instance: int, caller: Caller, path: str) -> requests.Response:
        # The session verifies the hosts' certificate with REQUESTS_CA_BUNDLE, which `run` points at their CA.
        return self.session.post(self.base_urls[instance] + path, headers={"Authorization": f"Bearer {caller.token}"},
                                 timeout=120)

    def cycle(self) -> None:
        """Create a room, read it, list rooms, add participants, both users join and leave its call, delete it."""
        created: list[str] = []
        roster = sdk_participants([caller.raw_id for caller in self.callers])
        if not self._timed("create", lambda i: created.append(self.rooms_clients[i].create_room(participants=roster).id)):
            return
        room_id = created[0]
        guests = sdk_participants([f"8:acs:soak-{uuid.uuid4()}" for _ in range(3)])
        steps: list[tuple[str, Callable[[int], object]]] = [
            ("get", lambda i: self.rooms_clients[i].get_room(room_id=room_id)),
            ("list", lambda i: next(iter(self.rooms_clients[i].list_rooms().by_page()))),
            ("update_participants", lambda i: self.rooms_clients[i].add_or_update_participants(
                room_id=room_id, participants=guests)),
            ("list_participants", lambda i: list(self.rooms_clients[i].list_participants(room_id=room_id))),
            *(("join", lambda i, c=caller: self._call(i, c, f"/roomCalls/{room_id}/join")) for caller in self.callers),
            *(("leave", lambda i, c=caller: self._call(i, c, f"/roomCalls/{room_id}/me/leave")) for caller in self.callers),
        ]
        for operation, action in steps:
            self._timed(operation, action)
        self._timed("delete", lambda i: self.rooms_clients[i].delete_room(room_id=room_id))


def run_workers(workers: list[Worker], seconds: float, instances: Sequence[int]) -> None:
    """Every worker runs cycles on its own thread until `seconds` have passed (a cycle under way finishes)."""
    deadline = time.monotonic() + seconds

    def loop(worker: Worker) -> None:
        worker.instances = instances
        while time.monotonic() < deadline:
            worker.cycle()

    threads = [threading.Thread(target=loop, args=(worker,), daemon=True) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# -- memory and CPU ------------------------------------------------------------------------------------
def process_usage(pid: int) -> tuple[int, float] | None:
    """(VmRSS in KiB, CPU seconds used so far) of a process, None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        # Fields 14 and 15 of /proc/<pid>/stat (user and system time in clock ticks), counted after
        # the command name, which sits in parentheses and may itself hold spaces.
        times = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss, (int(times[11]) + int(times[12])) / os.sysconf("SC_CLK_TCK")


ProcessRow = tuple[float, str, int, float]  # (seconds since start, name, KiB, CPU s)


class ProcessSampler:
    """Samples the RSS and CPU time of named processes every PROCESS_SAMPLE_SECONDS on a background thread."""

    def __init__(self, pids: dict[str, int], started: float) -> None:
        self.pids = pids
        self.started = started
        self.samples: list[ProcessRow] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter() - self.started
            for name, pid in self.pids.items():
                usage = process_usage(pid)
                if usage is not None:
                    self.samples.append((now, name, *usage))
            self._stop.wait(PROCESS_SAMPLE_SECONDS)

    def __enter__(self) -> "ProcessSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


# -- figures -----------------------------------------------------------------------------------
def window_index(at: float, window: float) -> int:
    """The window `at` seconds fall in: the index with index * window <= at < (index + 1) * window."""
    index = int(at // window)
    # Those products are the windows' bounds (from_s, to_s): they decide, should the division land one off.
    while index * window > at:
        index -= 1
    while (index + 1) * window <= at:
        index += 1
    return index


def window_row(index: int, window: float, inside: list[Sample], processes: list[ProcessRow]) -> dict:
    """One window's figures from the requests that ended in it and the process samples taken in it, in order."""
    low, high = index * window, (index + 1) * window
    latencies = sorted(s.latency for s in inside if s.error is None)
    errors = [s for s in inside if s.error is not None]
    memory: dict[str, list[int]] = {}
    cpu: dict[str, list[tuple[float, float]]] = {}
    for at, name, kib, cpu_seconds in processes:
        memory.setdefault(name, []).append(kib)
        cpu.setdefault(name, []).append((at, cpu_seconds))
    return {
        "window": index + 1,
        "from_s": round(low), "to_s": round(high),
        "requests": len(inside),
        "requests_per_s": round(len(inside) / window, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "errors": len(errors),
        "error_rate": round(len(errors) / len(inside), 5) if inside else 0.0,
        "first_error": errors[0].error if errors else None,
        "rss_mib": {name: round(sum(values) / len(values) / 1024, 1) for name, values in sorted(memory.items())},
        # CPU seconds used per second of the window, in percent of one core.
        "cpu_percent": {name: round((pairs[-1][1] - pairs[0][1]) / (pairs[-1][0] - pairs[0][0]) * 100)
                        for name, pairs in sorted(cpu.items()) if len(pairs) > 1 and pairs[-1][0] > pairs[0][0]},
        "p50_ms_by_operation": {name: round(percentile(sorted(values), 50) * 1000, 1)
                                for name, values in sorted(by_operation(inside).items())},
    }


def window_figures(samples: list[Sample], processes: list[ProcessRow], window: float, total: float) -> list[dict]:
    """Throughput, latency percentiles, errors, and per process mean RSS and CPU share, for each `window` seconds.

    The last window also takes the requests that ended after it (a cycle under way at the end finishes).
    """
    count = max(1, int(round(total / window)))
    requests: list[list[Sample]] = [[] for _ in range(count)]
    usage: list[list[ProcessRow]] = [[] for _ in range(count)]
    for sample in samples:
        if sample.at >= 0:
            requests[min(window_index(sample.at, window), count - 1)].append(sample)
    for row in processes:
        index = window_index(row[0], window)
        if 0 <= index < count:
            usage[index].append(row)
    return [window_row(index, window, requests[index], usage[index]) for index in range(count)]


def memory_verdict(windows: list[dict], hosts: Sequence[str]) -> dict:
    """Each host's last-window mean RSS against its first warm window's (window 2): flat within RSS_TOLERANCE."""
    if len(windows) < 3:
        return {"flat": None, "rule": "needs at least 3 windows"}
    first, last = windows[1]["rss_mib"], windows[-1]["rss_mib"]
    per_host = {}
    for name in hosts:
        growth = (last[name] - first[name]) / first[name]
        per_host[name] = {"first_warm_mib": first[name], "last_mib": last[name], "growth": round(growth, 4),
                          "peak_mib": max(w["rss_mib"][name] for w in windows if name in w["rss_mib"]),
                          "flat": growth <= RSS_TOLERANCE}
    return {
        "flat": all(host["flat"] for host in per_host.values()),
        "rule": f"last window's mean RSS at most {RSS_TOLERANCE:.0%} above window 2's (window 1 is warm-up)",
        "hosts": per_host,
    }


def by_operation(samples: list[Sample]) -> dict[str, list[float]]:
    """Latencies of the successful requests, per operation."""
    latencies: dict[str, list[float]] = {}
    for sample in samples:
        if sample.error is None:
            latencies.setdefault(sample.operation, []).append(sample.latency)
    return latencies


def totals(samples: list[Sample], seconds: float) -> dict:
    latencies = sorted(s.latency for s in samples if s.error is None)
    errors = sum(1 for s in samples if s.error is not None)
    return {
        "requests": len(samples), "errors": errors, "seconds": round(seconds, 1),
        "requests_per_s": round(len(samples) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "per_instance": {str(i): sum(1 for s in samples if s.instance == i) for i in sorted({s.instance for s in samples})},
        "operations": {name: {"count": len(values), "p50_ms": round(percentile(sorted(values), 50) * 1000, 1),
                              "p99_ms": round(percentile(sorted(values), 99) * 1000, 1)}
                       for name, values in sorted(by_operation(samples).items())},
    }


def call_completeness(received: list[dict]) -> dict:
    """Every call a cycle made must reach the webhook whole: started, 2 added, 2 removed, ended (repeats aside)."""
    distinct = {event["id"]: event for event in received}
    per_call: dict[str, dict[str, int]] = {}
    for event in distinct.values():
        kind = event["eventType"].rsplit(".", 1)[1]
        counts = per_call.setdefault(event["data"]["serverCallId"], {})
        counts[kind] = counts.get(kind, 0) + 1
    whole = {"CallStarted": 1, "CallParticipantAdded": 2, "CallParticipantRemoved": 2, "CallEnded": 1}
    return {"received": len(received), "distinct_ids": len(distinct), "calls": len(per_call),
            "calls_incomplete": sum(1 for counts in per_call.values() if counts != whole)}


def baseline(workers: list[Worker], instances: int, phase_seconds: float, rounds: int) -> dict | None:
    """Throughput through one instance against all of them, alternating phases so drift hits both."""
    if instances < 2 or rounds < 1:
        return None
    sides: dict[str, list[float]] = {"one": [], "all": []}
    for index in range(rounds):
        for side in ("one", "all") if index % 2 == 0 else ("all", "one"):
            samples: list[Sample] = []
            started = time.perf_counter()
            for worker in workers:
                worker.samples, worker.started = samples, started
            run_workers(workers, phase_seconds, [0] if side == "one" else list(range(instances)))
            elapsed = time.perf_counter() - started
            sides[side].append(round(sum(1 for s in samples if s.error is None) / elapsed, 1))
    one, both = sum(sides["one"]) / rounds, sum(sides["all"]) / rounds
    return {"phase_seconds": phase_seconds, "rounds": rounds, "one_instance_requests_per_s": sides["one"],
            f"{instances}_instances_requests_per_s": sides["all"], "ratio": round(both / one, 3) if one else None}


# -- the run ----------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0, help="soak length (default 5)")
    parser.add_argument("--instances", type=int, default=2, help="host processes on the one Azurite (default 2)")
    parser.add_argument("--concurrency", type=int, default=12, help="workers, each running room life cycles (default 12)")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per reported window (default 30)")
    parser.add_argument("--baseline-seconds", type=float, default=30.0,
                        help="length of each one-instance / all-instances phase after the soak, 0 for none (default 30)")
    parser.add_argument("--baseline-rounds", type=int, default=2, help="phases per side (default 2)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    if not (0 < args.minutes <= 120 and 1 <= args.instances <= 8 and 1 <= args.concurrency <= 128 and args.window >= 5):
        parser.error("keep it bounded: up to 120 minutes, 1-8 instances, 1-128 workers, windows of 5 s or more")
    return args


def run(args: argparse.Namespace, argv: Sequence[str]) -> dict:
    from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
    from azure.communication.rooms import RoomsClient

    from localdev.azurite import AzuriteTable
    from localdev.certs import ensure_dev_certificate
    from localdev.eventgrid import EventGridTopic, TopicThread
    from localdev.eventgrid.subscriber import WebhookSubscriber
    from localdev.settings import acs_connection_string, generate_app_settings
    from localdev.testing import HostProcess

    quiet_sdk_logging()
    scratch = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    certificate = ensure_dev_certificate(scratch / "certs")
    # The SDK clients and the workers' sessions here, and the hosts' Event Grid client.
    os.environ["REQUESTS_CA_BUNDLE"] = str(certificate.ca_cert)
    topic_key = base64.b64encode(secrets.token_bytes(32)).decode()
    azurite = AzuriteTable(certificate=certificate).start()
    topic = TopicThread(EventGridTopic(scratch / "eventgrid", key=topic_key, certificate=certificate))
    subscriber = WebhookSubscriber().start()
    hosts: list[HostProcess] = []
    try:
        endpoint = topic.start().endpoint
        topic.call(topic.topic.set_subscriptions([
            {"name": "soak", "destination": {"endpointType": "WebHook", "endpointUrl": subscriber.url}}]))
        settings = {
            **generate_app_settings(azurite.connection_string),
            "ANTEROOM_EVENTGRID_ENDPOINT": endpoint, "ANTEROOM_EVENTGRID_KEY": topic_key,
            # One access key drives the whole load: per-caller throttling would measure the throttle.
            "ANTEROOM_THROTTLE_REQUESTS": "0",
        }
        for _ in range(args.instances):
            hosts.append(HostProcess("function_app:app", ROOT, settings, certificate.ca_cert.parent,
                                     startup_timeout=60).start())
        connection_strings = [acs_connection_string(h.base_url, settings["ANTEROOM_ACCESS_KEY"]) for h in hosts]
        identity = CommunicationIdentityClient.from_connection_string(connection_strings[0])
        samples: list[Sample] = []
        workers = []
        for index in range(args.concurrency):
            pair = []
            for _ in range(2):
                user, token = identity.create_user_and_token([CommunicationTokenScope.VOIP])
                pair.append(Caller(user.raw_id, token.token))
            workers.append(Worker(index, [RoomsClient.from_connection_string(c) for c in connection_strings],
                                  [h.base_url for h in hosts], (pair[0], pair[1]), samples, 0.0))
        host_names = [f"host{i}" for i in range(len(hosts))]
        pids = {name: host.process.pid for name, host in zip(host_names, hosts)}
        pids["azurite"] = azurite.process.pid
        pids["client"] = os.getpid()  # this process: its threads drive the load and may be the limit
        print(f"soak: {args.instances} instances, {args.concurrency} workers, {args.minutes} min; pids {pids}",
              file=sys.stderr, flush=True)

        load_before = os.getloadavg()  # other jobs on the machine weigh on every figure
        started = time.perf_counter()
        for worker in workers:
            worker.started = started
        with ProcessSampler(pids, started) as sampler:
            reporter = threading.Thread(target=report_progress, args=(samples, sampler, args, started), daemon=True)
            reporter.start()
            run_workers(workers, args.minutes * 60, list(range(args.instances)))
            soaked = time.perf_counter() - started
            load_after = os.getloadavg()
        windows = window_figures(samples, sampler.samples, args.window, soaked)
        verdict = memory_verdict(windows, host_names)
        ratio = baseline(workers, args.instances, args.baseline_seconds, args.baseline_rounds) \
            if args.baseline_seconds > 0 else None
        time.sleep(5)  # the last events still on their way to the webhook
        received = subscriber.events()
        return {
            "benchmark": "soak", "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python -m benchmarks.soak", *argv]), "machine": machine(),
            "config": {"minutes": args.minutes, "instances": args.instances, "concurrency": args.concurrency,
                       "window_s": args.window, "rss_tolerance": RSS_TOLERANCE,
                       "cycle": "create (2 users) > get > list > add 3 participants > list participants > "
                                "2 joins > 2 leaves > delete; each request to the next instance in turn",
                       "throttling": "off (ANTEROOM_THROTTLE_REQUESTS=0)"},
            "load_average_1m": {"start": round(load_before[0], 2), "end_of_soak": round(load_after[0], 2)},
            "totals": totals(samples, soaked),
            "windows": windows,
            "memory": verdict,
            "baseline": ratio,
            "events_at_subscriber": call_completeness(received),
            "host_errors_logged": {name: host.output().count("Traceback") for name, host in zip(host_names, hosts)},
        }
    finally:
        for host in hosts:
            host.stop()
        subscriber.stop()
        topic.stop()
        azurite.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def report_progress(samples: list[Sample], sampler: ProcessSampler, args: argparse.Namespace, started: float) -> None:
    """Print each window's line as it closes, so a long soak shows its progress.

    A line covers the requests and process samples of its window that had arrived when it closed.
    """
    requests = Arrivals(samples, lambda sample: sample.at, args.window)
    usage = Arrivals(sampler.samples, lambda row: row[0], args.window)
    index = 1
    while index * args.window <= args.minutes * 60 + 1:
        time.sleep(max(0.0, started + index * args.window - time.perf_counter()))
        row = window_row(index - 1, args.window, requests.take(index - 1), usage.take(index - 1))
        print(format_window(row), file=sys.stderr, flush=True)
        index += 1


class Arrivals:
    """The items of a list that other threads append to, put aside by window as they are first seen."""

    def __init__(self, source: list, at: Callable[[Any], float], window: float) -> None:
        self.source, self.at, self.window = source, at, window
        self.seen = 0
        self.kept: dict[int, list] = {}

    def take(self, index: int) -> list:
        """The items of window `index` that have arrived, in order; any for an earlier window are dropped."""
        arrived = self.source[self.seen:]
        self.seen += len(arrived)
        for item in arrived:
            place = window_index(self.at(item), self.window)
            if place >= index:
                self.kept.setdefault(place, []).append(item)
        return self.kept.pop(index, [])


def format_window(row: dict) -> str:
    memory = " ".join(f"{name} {mib:.0f} MiB {row['cpu_percent'].get(name, 0)}%" for name, mib in row["rss_mib"].items())
    return (f"{row['from_s']:>4}-{row['to_s']:<4}s {row['requests_per_s']:>6.1f} req/s  p50 {row['p50_ms']:>6.1f} ms  "
            f"p99 {row['p99_ms']:>7.1f} ms  errors {row['errors']:>3}  {memory}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    report = run(args, argv)
    for row in report["windows"]:
        print(format_window(row))
    print(json.dumps({key: report[key] for key in ("totals", "memory", "baseline", "events_at_subscriber")}, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.output}")
    sound = report["totals"]["errors"] == 0 and report["events_at_subscriber"]["calls_incomplete"] == 0
    return 0 if sound and report["memory"]["flat"] is not False else 1


if __name__ == "__main__":
    sys.exit(main())
