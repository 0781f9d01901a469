"""Azurite's guardian: one SIGINT however the host ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from localdev.azurite import GUARDIAN

# Stands in for Azurite: counts the SIGINTs it gets from the first one until it has "saved".
FAKE_AZURITE = r"""
import signal, sys, time
out, save_seconds, ignore = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "ignore"
got = []
signal.signal(signal.SIGINT, lambda *_: got.append(1))
open(out + ".ready", "w").close()
while not got:
    time.sleep(0.01)
if ignore:
    time.sleep(60)
time.sleep(save_seconds)
with open(out, "w") as saved:
    saved.write(str(len(got)))
"""

def _guardian(tmp_path: Path, *, save_seconds: float = 0.5, ignore: bool = False,
              save_timeout: float = 10.0) -> tuple[subprocess.Popen, int, Path]:
    """The guardian over FAKE_AZURITE; returns it, the pipe's write end and the fake's result file."""
    out = tmp_path / "saved"
    control_read, control_write = os.pipe()
    guardian = subprocess.Popen(
        [sys.executable, "-I", str(GUARDIAN), "--control-fd", str(control_read),
         "--save-timeout", str(save_timeout), "--log", str(tmp_path / "guardian.log"), "--",
         sys.executable, "-c", FAKE_AZURITE, str(out), str(save_seconds), "ignore" if ignore else "-"],
        pass_fds=(control_read,), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(control_read)
    _wait_for(Path(str(out) + ".ready"))
    return guardian, control_write, out


def _wait_for(path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_closing_the_pipe_gives_azurite_exactly_one_sigint(tmp_path):
    guardian, control, saved = _guardian(tmp_path)
    os.close(control)  # what the host's death does too
    time.sleep(0.2)
    guardian.send_signal(signal.SIGTERM)  # more stop requests while it saves change nothing
    assert guardian.wait(15) == 0
    assert saved.read_text() == "1"


def test_a_killed_guardian_still_gives_azurite_exactly_one_sigint(tmp_path):
    guardian, control, saved = _guardian(tmp_path)
    try:
        guardian.kill()
        guardian.wait(5)
        _wait_for(saved)
        time.sleep(0.1)  # the file is written at once; let a late second signal show in a rerun
        assert saved.read_text() == "1"
    finally:
        os.close(control)


def test_an_azurite_that_does_not_exit_is_sigkilled_and_that_is_logged(tmp_path):
    guardian, control, saved = _guardian(tmp_path, ignore=True, save_timeout=0.5)
    os.close(control)
    assert guardian.wait(15) == 128 + signal.SIGKILL
    assert not saved.exists()
    assert "SIGKILL" in (tmp_path / "guardian.log").read_text()
