"""The shared benchmark arithmetic: nearest-rank percentiles and the alternating raw/sdk comparison, on stubs."""
from __future__ import annotations

from benchmarks.api import PhaseResult, measure
from benchmarks.events import Side
from benchmarks.stats import percentile


def test_percentile_is_nearest_rank_never_interpolated():
    samples = [1.0, 2.0, 3.0, 4.0, 5.0]
    # Interpolation would give 2.2 at the 30th: nearest rank gives a sample that was measured.
    assert [percentile(samples, rank) for rank in (30, 50, 99, 100)] == [2.0, 3.0, 5.0, 5.0]
    assert percentile([7.0], 50) == 7.0 and percentile([], 99) == 0.0
    # Ranks landing exactly on a sample take that sample, not the next one up.
    four = [1.0, 2.0, 3.0, 4.0]
    assert [percentile(four, rank) for rank in (25, 50, 75, 100)] == [1.0, 2.0, 3.0, 4.0]
    assert percentile([float(i) for i in range(1, 101)], 7) == 7.0


def test_events_use_the_same_percentiles_and_report_none_without_events():
    side = Side("app", pairs=[(0.0, seconds) for seconds in (0.001, 0.002, 0.003, 0.004)],
                from_event_time=[0.010], finished=1.0)
    summary = side.summary()
    assert (summary["p50_ms"], summary["p99_ms"]) == (2.0, 4.0)
    assert (summary["from_event_time_p50_ms"], summary["from_event_time_p99_ms"]) == (10.0, 10.0)
    empty = Side("app", finished=1.0).summary()
    assert (empty["p50_ms"], empty["p99_ms"]) == (None, None) and "from_event_time_p50_ms" not in empty


def test_measure_warms_up_then_alternates_sides_and_gives_a_row_per_operation():
    calls = []

    def phase(side: str, seconds: float) -> dict[str, PhaseResult]:
        calls.append((side, seconds))
        # The sdk side twice as fast and half the latency; joins and leaves apart, as benchmarks.calls has them.
        latency = 0.010 if side == "raw" else 0.005
        ops = 10 if side == "raw" else 20
        return {name: PhaseResult(ops=ops, elapsed=seconds, latencies=[latency] * ops) for name in ("join", "leave")}

    rows = measure(phase, ("join", "leave"), concurrency=4, warmup=0.5, duration=2.0, rounds=3)
    assert calls == [("raw", 0.5), ("sdk", 0.5), ("raw", 2.0), ("sdk", 2.0), ("sdk", 2.0), ("raw", 2.0),
                     ("raw", 2.0), ("sdk", 2.0)]
    assert [row["operation"] for row in rows] == ["join", "leave"]
    join = rows[0]
    assert join["concurrency"] == 4 and join["raw"]["ops"] == 30  # the warm-up is not counted
    assert join["raw"]["rounds_ops_per_s"] == [5.0, 5.0, 5.0] and join["sdk"]["ops_per_s"] == 10.0
    assert (join["throughput_ratio"], join["p50_ratio"]) == (2.0, 0.5)
