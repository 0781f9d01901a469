"""`pytest -m "not stack"` passes, starts no process (the guard of tests/support/isolation.py fails any test that does) and takes seconds."""
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.stack  # it runs pytest in a process of its own

# A bound only a hung or process-starting suite would reach; the figure itself is printed.
GENEROUS_SECONDS = 300


def test_the_suite_without_stack_passes_in_seconds():
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "not stack", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=2 * GENEROUS_SECONDS,
    )
    elapsed = time.monotonic() - started
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    print(f"pytest -m 'not stack': {summary} ({elapsed:.1f} s wall clock)")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary
    assert elapsed < GENEROUS_SECONDS
