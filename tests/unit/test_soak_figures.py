"""The soak benchmark's arithmetic: windows, the memory verdict and call completeness, on hand-made samples."""
from __future__ import annotations

from benchmarks.soak import Sample, call_completeness, memory_verdict, window_figures


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
