"""Tests that start processes carry `stack`; any other test that starts one fails, so `pytest -m "not stack"` starts none.

A test starting processes itself is marked `stack` in its module; a fixture starting them requests
`starts_processes`, and every test using it (even through other fixtures) is marked here.
"""
from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Iterator

import _posixsubprocess
import pytest

TESTS = Path(__file__).resolve().parents[1]
# Folders whose every test runs processes: the local tooling itself, and the hostile stacks.
PROCESS_FOLDERS = frozenset({"localdev", "hardening", "sdk_suites"})
# Every way a process starts: subprocess (and asyncio's and os.popen, built on it), fork (and
# multiprocessing's default start method, os.spawn*, pty), posix_spawn, os.system, and the
# fork-exec multiprocessing's spawn and forkserver methods call directly.
_STARTERS = (
    (subprocess.Popen, "_execute_child", "subprocess"),
    (os, "fork", "os.fork"),
    (os, "forkpty", "os.forkpty"),
    (os, "posix_spawn", "os.posix_spawn"),
    (os, "posix_spawnp", "os.posix_spawnp"),
    (os, "system", "os.system"),
    (_posixsubprocess, "fork_exec", "fork_exec"),
)


@pytest.fixture(scope="session")
def starts_processes() -> None:
    """Requested by the fixtures that start processes, so that the tests using them are `stack`."""


def pytest_configure(config: pytest.Config) -> None:
    # The first Azure SDK client of a process puts platform.platform() in its User-Agent, whose
    # processor field Python reads from `uname -p`: a process. Give it coreutils' answer here
    # ("unknown", which platform reports as '') so that building a client starts none.
    uname = platform.uname()
    vars(uname).setdefault("processor", "")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.path)).relative_to(TESTS).parts[0]
        if folder in PROCESS_FOLDERS or "starts_processes" in item.fixturenames:
            item.add_marker(pytest.mark.stack)


@contextlib.contextmanager
def _no_processes(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("stack") is not None:
        yield
        return
    started: list[str] = []

    def refuse(name: str):
        def refused(*args, **kwargs):
            started.append(name)
            # pytest.fail raises a BaseException: no `except Exception` in the code under test hides it.
            pytest.fail(f"{item.nodeid} started a process ({name}) but is not marked `stack`", pytrace=False)
        return refused

    with pytest.MonkeyPatch.context() as patch:
        for owner, name, label in _STARTERS:
            if hasattr(owner, name):
                patch.setattr(owner, name, refuse(label))
        yield
    if started:  # raised inside a thread, or caught as a BaseException: still this test's failure
        pytest.fail(f"{item.nodeid} started a process ({', '.join(started)}) but is not marked `stack`", pytrace=False)


# Setup and the test itself; not teardown, where pytest also finalizes session fixtures of
# `stack` tests that ran before (stopping a stack may run a process).
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    with _no_processes(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with _no_processes(item):
        return (yield)
