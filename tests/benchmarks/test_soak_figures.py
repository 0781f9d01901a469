"""The soak benchmark's arithmetic: windows, the memory verdict and call completeness, on hand-made samples."""
from __future__ import annotations

import argparse
import math
import random
from types import SimpleNamespace

import pytest

from benchmarks import soak
from benchmarks.soak import (
    Sample,
    call_completeness,
    format_window,
    memory_verdict,
    report_progress,
    window_figures,
    window_index,
    window_row,
)


def test_windows_split_requests_errors_and_memory():
    samples = [Sample(1.0, "get", 0.010, 0), Sample(1.5, "get", 0.020, 0), Sample(2.0, "get", 0.030, 1), Sample(12.0, "create", 0.020, 0, "500 boom"),
               Sample(13.0, "list", 0.040, 1)]
    processes = [(0.5, "host0", 1024, 1.0), (1.5, "host0", 3072, 1.5), (11.0, "host0", 4096, 2.0)]
    first, second = window_figures(samples, processes, 10.0, 20.0)
    assert (first["requests"], first["errors"], first["requests_per_s"]) == (3, 0, 0.3)
    assert (first["p50_ms"], first["p99_ms"], first["rss_mib"]) == (20.0, 30.0, {"host0": 2.0})
    assert first["cpu_percent"] == {"host0": 50}  # 0.5 CPU seconds in the second between two samples
    assert (second["requests"], second["errors"], second["error_rate"]) == (2, 1, 0.5)
    assert second["first_error"] == "500 boom" and second["p50_ms"] == 40.0  # failures have no latency


def window(mib: float) -> dict:
    return {"rss_mib": {"host0": mib}}


def test_memory_is_flat_within_ten_percent_of_the_first_warm_window():
    warm_up_spike = window(300.0)  # window 1 is never the reference
    assert memory_verdict([warm_up_spike, window(100.0), window(104.0), window(110.0)], ["host0"])["flat"] is True
    grown = memory_verdict([window(90.0), window(100.0), window(105.0), window(111.0)], ["host0"])
    assert grown["flat"] is False and grown["hosts"]["host0"]["growth"] == 0.11
    assert memory_verdict([window(1.0), window(1.0)], ["host0"])["flat"] is None


def event(event_id: str, kind: str, call: str = "c1") -> dict:
    return {"id": event_id, "eventType": f"Microsoft.Communication.{kind}", "data": {"serverCallId": call}}


def test_a_call_is_complete_with_one_start_two_adds_two_removes_one_end_repeats_aside():
    whole = [event("1", "CallStarted"), event("2", "CallParticipantAdded"), event("3", "CallParticipantAdded"),
             event("4", "CallParticipantRemoved"), event("5", "CallParticipantRemoved"), event("6", "CallEnded")]
    repeated = whole + [whole[1]]
    assert call_completeness(repeated) == {"received": 7, "distinct_ids": 6, "calls": 1, "calls_incomplete": 0}
    lost_one = whole[:-1] + [event("7", "CallStarted", "c2")]
    assert call_completeness(lost_one)["calls_incomplete"] == 2


# -- windows bucketed once, against the implementation that scanned every sample for every window ----------
def window_figures_before(samples, processes, window, total):
    """window_figures as it was before it bucketed the samples once: every window scanned all the requests and
    process samples for its own. The reference the tests below compare with; the figures are window_row's."""
    rows = []
    count = max(1, int(round(total / window)))
    for index in range(count):
        low, high = index * window, (index + 1) * window
        inside = [s for s in samples if low <= s.at < high or (index == count - 1 and s.at >= high)]
        rows.append(window_row(index, window, inside, [row for row in processes if low <= row[0] < high]))
    return rows


def synthetic(rng: random.Random, window: float, span: float, count: int) -> tuple[list[Sample], list[tuple]]:
    """Requests and process samples over `span` seconds, with times on, just under and just over window bounds."""
    edges = [k * window for k in range(int(span / window) + 2)]
    times = [rng.uniform(-1.0, span) for _ in range(count)]
    times += [value for edge in edges for value in (edge, math.nextafter(edge, -math.inf), math.nextafter(edge, math.inf))]
    rng.shuffle(times)
    operations = ("create", "get", "list", "join", "leave", "delete")
    samples = [Sample(at, rng.choice(operations), rng.expovariate(50.0), rng.randrange(2),
                      f"500 boom {i}" if rng.random() < 0.05 else None) for i, at in enumerate(times)]
    processes, cpu = [], {"host0": 0.0, "host1": 0.0, "azurite": 0.0}
    for at in sorted(rng.uniform(-1.0, span) for _ in range(count // 5)) + edges:
        name = rng.choice(sorted(cpu))
        cpu[name] += rng.uniform(0.0, 0.5)
        processes.append((at, name, rng.randrange(50_000, 200_000), cpu[name]))
    return samples, processes


@pytest.mark.parametrize("window", [10.0, 7.3, 5.0, 0.1, 30.0])
def test_window_figures_match_the_implementation_that_scanned_every_window(window):
    rng = random.Random(f"windows-{window}")
    for total in (window * 6, window * 6.4, window * 5.6, window * 0.3, window * 20):
        samples, processes = synthetic(rng, window, total * 1.1, 400)
        assert window_figures(samples, processes, window, total) == window_figures_before(samples, processes, window, total)
    assert window_figures([], [], window, window * 3) == window_figures_before([], [], window, window * 3)


def test_window_index_follows_the_window_bounds():
    for window in (0.1, 7.3, 10.0, 30.0):
        for k in range(200):
            for at in (k * window, math.nextafter(k * window, math.inf), math.nextafter(k * window, -math.inf)):
                index = window_index(at, window)
                assert index * window <= at < (index + 1) * window


@pytest.mark.parametrize("window", [5.0, 7.3])
def test_progress_lines_match_the_last_window_recomputed_from_everything_arrived(window, monkeypatch, capsys):
    """Each line is what the reporter printed before: the last window of window_figures over all that had arrived
    when the window closed. Requests arrive out of order, some after their window's line, some before their window."""
    rng = random.Random(f"progress-{window}")
    args = argparse.Namespace(window=window, minutes=0.5)
    samples, processes = synthetic(rng, window, 40.0, 2000)
    processes.sort(key=lambda row: row[0])  # the sampler appends in time order
    # A request is appended when its thread gets to it: mostly at once, sometimes a window or two late.
    delays = [rng.uniform(0, 2.5 * window) if rng.random() < 0.1 else rng.uniform(0, 0.3) for _ in samples]
    arriving = sorted(zip((max(0.0, s.at) + delay for s, delay in zip(samples, delays)), samples), key=lambda pair: pair[0])
    appended: list[Sample] = []
    sampler = SimpleNamespace(samples=[])
    expected = []

    def sleep(seconds: float) -> None:  # the window closes, its line a little late: what arrived by then is in
        index = len(expected) + 1
        closed = index * window + rng.uniform(0, 0.5)
        while len(appended) < len(arriving) and arriving[len(appended)][0] < closed and rng.random() < 0.97:
            appended.append(arriving[len(appended)][1])
        while len(sampler.samples) < len(processes) and processes[len(sampler.samples)][0] < closed:
            sampler.samples.append(processes[len(sampler.samples)])
        expected.append(window_figures_before([s for s in appended if s.at < index * window],
                                              [r for r in sampler.samples if r[0] < index * window],
                                              window, index * window)[-1])

    monkeypatch.setattr(soak.time, "sleep", sleep)
    report_progress(appended, sampler, args, started=0.0)
    printed = capsys.readouterr().err.splitlines()
    assert len(expected) == int((args.minutes * 60 + 1) // window) and any(row["requests"] for row in expected)
    assert printed == [format_window(row) for row in expected]
