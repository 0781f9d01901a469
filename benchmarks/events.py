"""Call events end to end: HTTP join/leave answered -> webhook receives the event, against a raw publish to the same topic."""
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
from typing import Sequence

from benchmarks.api import machine, run_phase
from benchmarks.calls import setup
from benchmarks.stats import percentile

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "events.json"
ROOT = Path(__file__).resolve().parents[1]
ADDED = "Microsoft.Communication.CallParticipantAdded"
REMOVED = "Microsoft.Communication.CallParticipantRemoved"


@dataclass
class Mover:
    """A benchmarks.calls seat (a user joining and leaving a call a resident keeps open) that notes when each answer came."""

    seat: object  # benchmarks.calls.Seat
    answered: dict[str, list[float]] = field(default_factory=lambda: {ADDED: [], REMOVED: []})

    @property
    def raw_id(self) -> str:
        return self.seat.raw_id

    def step(self) -> None:
        kind = self.seat.join_or_leave()
        # The answer means the state change and its event are committed: latency starts here.
        self.answered[ADDED if kind == "join" else REMOVED].append(time.time())


@dataclass
class Side:
    """What one timed phase produced: (state change, receipt) pairs and the phase's wall time."""

    name: str
    pairs: list[tuple[float, float]] = field(default_factory=list)
    from_event_time: list[float] = field(default_factory=list)  # receipt minus the event's own eventTime
    started: float = 0.0
    finished: float = 0.0
    errors: int = 0

    def summary(self) -> dict:
        latencies = sorted(received - changed for changed, received in self.pairs)
        seconds = self.finished - self.started
        return {"events": len(self.pairs), "errors": self.errors, "seconds": round(seconds, 3),
                "events_per_s": round(len(self.pairs) / seconds, 1) if seconds else 0.0,
                # None, not percentile's 0, when nothing arrived: 0 ms would read as a measurement.
                "p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
                "p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
                "min_ms": round(latencies[0] * 1000, 2) if latencies else None,
                # The app publishes right after its commit, while the HTTP answer is still on its way:
                # an event can reach the webhook before the client has its answer (negative latency).
                "received_before_answer": sum(1 for latency in latencies if latency < 0),
                **self._event_time_summary()}

    def _event_time_summary(self) -> dict:
        """Latency from the event's eventTime (the app's commit clock; the baseline's send) to receipt."""
        if not self.from_event_time:
            return {}
        ordered = sorted(self.from_event_time)
        return {"from_event_time_p50_ms": round(percentile(ordered, 50) * 1000, 2),
                "from_event_time_p99_ms": round(percentile(ordered, 99) * 1000, 2)}


def event_epoch(event_time: str) -> float:
    from localdev.eventgrid_trigger import parse_event_time

    return parse_event_time(event_time).timestamp()


def first_receipts(subscriber) -> dict[str, tuple[float, dict]]:
    """Event id -> (first receipt time, event): a redelivery keeps its id and is counted once."""
    seen: dict[str, tuple[float, dict]] = {}
    for record in list(subscriber.notifications):
        for event in record.events:
            seen.setdefault(event["id"], (record.received_at, event))
    return seen


def run_threads(work, count: int, duration: float) -> tuple[float, int]:
    """`work(index)` in a loop on `count` threads for `duration` s; returns (start time, errors)."""
    started = time.time()
    result = run_phase([lambda i=i: work(i) for i in range(count)], duration, max_ops=10**9)
    if result.first_error:
        print(f"error: {result.first_error}", file=sys.stderr)
    return started, result.errors


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("events still missing after the phase")
        time.sleep(0.02)


def measure_app(movers: list[Mover], subscriber, duration: float) -> Side:
    """Join/leave through the app; pair each answer with the receipt of the event it produced."""
    for mover in movers:
        mover.answered = {ADDED: [], REMOVED: []}
    before = set(first_receipts(subscriber))
    started, errors = run_threads(lambda i: movers[i].step(), len(movers), duration)
    expected = sum(len(times) for mover in movers for times in mover.answered.values())
    wait_until(lambda: len(set(first_receipts(subscriber)) - before) >= expected, 120)
    receipts = {k: v for k, v in first_receipts(subscriber).items() if k not in before}
    side = Side("app", started=started, errors=errors)
    for kind in (ADDED, REMOVED):
        for mover in movers:
            # A room's events carry its commit times in order: the n-th of a kind answers the n-th step.
            ordered = sorted((event["eventTime"], received) for received, event in receipts.values()
                             if event["eventType"] == kind and event["data"]["user"]["communicationIdentifier"]["rawId"] == mover.raw_id)
            side.pairs.extend(zip(mover.answered[kind], (r for _, r in ordered)))
            side.from_event_time.extend(r - event_epoch(t) for t, r in ordered)
    side.finished = max(received for _, received in side.pairs)
    return side


def measure_baseline(publishers, subscriber, concurrency: int, duration: float) -> Side:
    """One raw publish per request to the same topic and webhook, no app in between."""
    sent: dict[str, float] = {}
    lock = threading.Lock()

    def publish(index: int) -> None:
        event_id = str(uuid.uuid4())
        event = {"id": event_id, "subject": f"call/baseline/participant/{index}", "eventType": ADDED,
                 "eventTime": datetime.now(timezone.utc).isoformat(), "dataVersion": "1.0",
                 "data": {"room": {"id": "baseline"}, "padding": "x" * 900}}  # about the size of a call event
        began = time.time()
        publishers[index].send([event])
        with lock:
            sent[event_id] = began

    started, errors = run_threads(publish, concurrency, duration)
    wait_until(lambda: set(sent) <= set(first_receipts(subscriber)), 120)
    receipts = first_receipts(subscriber)
    side = Side("baseline", started=started, errors=errors,
                pairs=[(began, receipts[event_id][0]) for event_id, began in sent.items()],
                from_event_time=[receipts[i][0] - event_epoch(receipts[i][1]["eventTime"]) for i in sent])
    side.finished = max(received for _, received in side.pairs)
    return side


def setup_movers(settings: dict, base_url: str, storage: str, count: int) -> list[Mover]:
    from types import SimpleNamespace

    connection_string = f"endpoint={base_url}/;accesskey={settings['ANTEROOM_ACCESS_KEY']}"
    service = SimpleNamespace(settings=settings, connection_string=connection_string, base_url=base_url,
                              storage_connection_string=storage)
    return [Mover(seat) for seat in setup(service, count)]


def run(args: argparse.Namespace) -> dict:
    from azure.core.credentials import AzureKeyCredential
    from azure.eventgrid import EventGridPublisherClient

    from localdev.azurite import AzuriteTable
    from localdev.certs import ensure_dev_certificate
    from localdev.eventgrid import EventGridTopic, TopicThread
    from localdev.eventgrid.subscriber import WebhookSubscriber
    from localdev.settings import generate_app_settings
    from localdev.testing import HostProcess

    scratch = Path(tempfile.mkdtemp(prefix="bench-events-"))
    certificate = ensure_dev_certificate(scratch / "certs")
    os.environ["REQUESTS_CA_BUNDLE"] = str(certificate.ca_cert)  # the publisher client reads it per request
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    azurite = AzuriteTable(certificate=certificate).start()
    topic = TopicThread(EventGridTopic(scratch / "eventgrid", key=key, certificate=certificate))
    subscriber = WebhookSubscriber().start()
    host = None
    try:
        endpoint = topic.start().endpoint
        states = topic.call(topic.topic.set_subscriptions([
            {"name": "bench", "destination": {"endpointType": "WebHook", "endpointUrl": subscriber.url}}]))
        assert states == {"bench": "active"}, states
        settings = {**generate_app_settings(azurite.connection_string),
                    "ANTEROOM_EVENTGRID_ENDPOINT": endpoint, "ANTEROOM_EVENTGRID_KEY": key}
        host = HostProcess("function_app:app", ROOT, settings, certificate.ca_cert.parent).start()
        movers = setup_movers(settings, host.base_url, azurite.connection_string, args.concurrency)
        publishers = [EventGridPublisherClient(endpoint, AzureKeyCredential(key)) for _ in range(args.concurrency)]
        # Warm-up: connections, caches, first-use imports on both sides.
        measure_app(movers, subscriber, args.warmup)
        measure_baseline(publishers, subscriber, args.concurrency, args.warmup)
        rounds = []
        sides: dict[str, list[Side]] = {"app": [], "baseline": []}  # each side's rounds, in order
        for index in range(args.rounds):
            order = ("baseline", "app") if index % 2 == 0 else ("app", "baseline")  # drift hits both
            for name in order:
                side = measure_app(movers, subscriber, args.duration) if name == "app" else \
                    measure_baseline(publishers, subscriber, args.concurrency, args.duration)
                rounds.append({"round": index + 1, "side": name, **side.summary()})
                sides[name].append(side)
        totals = {}
        for name, mine in sides.items():
            merged = Side(name)
            for side in mine:
                merged.pairs.extend(side.pairs)
                merged.from_event_time.extend(side.from_event_time)
            # The sum of the seconds the rounds report (rounded to the millisecond, as they are).
            merged.started, merged.finished = 0.0, sum(round(side.finished - side.started, 3) for side in mine)
            merged.errors = sum(side.errors for side in mine)
            totals[name] = merged.summary()
        return {
            "benchmark": "events", "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "command": "python -m benchmarks.events " + " ".join(sys.argv[1:]),
            "config": {"concurrency": args.concurrency, "duration_s": args.duration, "rounds": args.rounds,
                       "warmup_s": args.warmup},
            "rounds": rounds, "app": totals["app"], "baseline": totals["baseline"],
            "ratio": {
                "events_per_s": round(totals["app"]["events_per_s"] / totals["baseline"]["events_per_s"], 3),
                "p50": round(totals["app"]["p50_ms"] / totals["baseline"]["p50_ms"], 2),
                "p99": round(totals["app"]["p99_ms"] / totals["baseline"]["p99_ms"], 2),
            },
        }
    finally:
        if host is not None:
            host.stop()
        subscriber.stop()
        topic.stop()
        azurite.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.events", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=4, help="threads (rooms, publishers) per side")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per timed phase")
    parser.add_argument("--rounds", type=int, default=2, help="timed phases per side, alternating")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per side")
    parser.add_argument("--out", default=str(RESULTS_FILE), help="JSON results file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("azure").setLevel(logging.ERROR)  # the Rooms SDK warns about naive datetimes it makes itself
    args = parse_args(argv)
    result = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name in ("app", "baseline"):
        print(f"{name:9} {json.dumps(result[name])}")
    print(f"ratio     {json.dumps(result['ratio'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
