"""Child-process helpers: tie a child's life to ours and stop its whole process group."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
from typing import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent_hook(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` for Popen that sends the child `signum` if this process dies.

    Covers the case where this process is killed without stopping its
    children (e.g. SIGKILL). Returns None off the main thread: the death
    signal fires when the *thread* that forked exits, so it is only safe from
    the main thread, which lives as long as the process.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def set_death_signal() -> None:
        # Runs in the child between fork and exec.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return set_death_signal


def stop_process_group(process: subprocess.Popen, timeout: float = 10.0,
                       signum: int = signal.SIGTERM) -> None:
    """Send `signum` to the child's process group, SIGKILL whatever is left after `timeout`.

    The child must have been started with `start_new_session=True`.
    """
    if process.poll() is None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Grandchildren may outlive the leader; the group id is the leader's pid.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
