"""Azurite's guardian and the data folder's lock: one SIGINT however the host ends, one Azurite per folder."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from localdev.azurite import (DATA_LOCK_FILE, GUARDIAN, GUARDIAN_LOG_FILE, OWNER_LOCK_FILE, REPO_ROOT,
                              AzuriteFolderInUse, AzuriteTable, empty_data_folder)
from tests.conftest import TEST_CERT_DIR, dev_certificate

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

# A multi-threaded host that starts Azurite on a folder, writes rows, says so, and waits to be killed.
THREADED_HOST = r"""
import sys, threading, time
sys.path.insert(0, sys.argv[2])
from azure.data.tables import TableServiceClient
from localdev.azurite import AzuriteTable
from localdev.certs import ensure_dev_certificate
azurite = AzuriteTable(certificate=ensure_dev_certificate(sys.argv[3]), location=sys.argv[1]).start()
for _ in range(16):
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
table = TableServiceClient.from_connection_string(azurite.connection_string).create_table("kept")
for batch in range(20):
    table.submit_transaction([("upsert", {"PartitionKey": "p", "RowKey": f"{batch}-{i}"}) for i in range(100)])
print("written", flush=True)
time.sleep(600)
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


def test_azurite_saves_when_a_multithreaded_host_is_sigkilled(tmp_path):
    """The defect's root: every thread of a killed host re-sent the parent-death SIGINT, the 2nd killed Azurite unsaved."""
    folder = tmp_path / "data"
    for attempt in range(3):
        host = subprocess.Popen([sys.executable, "-c", THREADED_HOST, str(folder), str(REPO_ROOT), str(TEST_CERT_DIR)],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            assert host.stdout.readline().strip() == "written"
            host.kill()
            host.wait(10)
        finally:
            host.kill()
        with AzuriteTable(certificate=dev_certificate(), location=folder) as azurite:  # waits for the killed host's Azurite to save
            table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client("kept")
            assert len(list(table.list_entities())) == 2000, f"attempt {attempt}"
            table.delete_table()


def _hold_data_lock(folder: Path, seconds: float) -> subprocess.Popen:
    """A process holding the data lock for `seconds`, like an Azurite still saving after its host died."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(float(sys.argv[2]))",
         str(folder / DATA_LOCK_FILE), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_start_waits_until_the_previous_azurite_on_the_folder_has_exited(tmp_path, caplog):
    holder = _hold_data_lock(tmp_path / "data", 1.5)
    started = time.monotonic()
    with caplog.at_level("INFO", logger="localdev"), AzuriteTable(certificate=dev_certificate(), location=tmp_path / "data") as azurite:
        assert holder.poll() is not None  # it started only once the holder was gone
        assert azurite.port
    assert time.monotonic() - started >= 1.0
    assert "waiting up to 90 s for the previous Azurite" in caplog.text


def test_a_start_gives_up_waiting_with_a_clear_error(tmp_path):
    holder = _hold_data_lock(tmp_path / "data", 30)
    try:
        with pytest.raises(AzuriteFolderInUse, match="still runs after 0.5 s"):
            AzuriteTable(certificate=dev_certificate(), location=tmp_path / "data", lock_timeout=0.5).start()
    finally:
        holder.kill()
        holder.wait()
    # Nothing was left locked by the failed start.
    with AzuriteTable(certificate=dev_certificate(), location=tmp_path / "data", lock_timeout=5):
        pass


def test_a_folder_in_use_by_a_running_azurite_is_refused_at_once(tmp_path):
    with AzuriteTable(certificate=dev_certificate(), location=tmp_path / "data"):
        started = time.monotonic()
        with pytest.raises(AzuriteFolderInUse, match=f"another running localdev \\(pid {os.getpid()}\\)"):
            AzuriteTable(certificate=dev_certificate(), location=tmp_path / "data").start()
        assert time.monotonic() - started < 5
        with pytest.raises(AzuriteFolderInUse):
            empty_data_folder(tmp_path / "data")


def test_a_killed_guardian_leaves_azurite_holding_the_lock_until_it_has_saved(tmp_path):
    folder = tmp_path / "data"
    azurite = AzuriteTable(certificate=dev_certificate(), location=folder).start()
    try:
        TableServiceClient.from_connection_string(azurite.connection_string).create_table("kept")
        azurite_pid = int((folder / DATA_LOCK_FILE).read_text())
        held = {os.path.realpath(f"/proc/{azurite_pid}/fd/{fd}") for fd in os.listdir(f"/proc/{azurite_pid}/fd")}
        assert str(folder / DATA_LOCK_FILE) in held and str(folder / OWNER_LOCK_FILE) not in held
        azurite.process.kill()  # its death signal makes Azurite save and exit
        azurite.process.wait()
    finally:
        azurite.stop()
    with open(folder / DATA_LOCK_FILE) as lock:
        deadline = time.monotonic() + 15
        while True:  # free once Azurite (every thread of it) is gone
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "Azurite did not exit after its guardian was killed"
                time.sleep(0.02)
    with AzuriteTable(certificate=dev_certificate(), location=folder) as azurite:
        assert [t.name for t in TableServiceClient.from_connection_string(azurite.connection_string).list_tables()] \
            == ["kept"]


def test_empty_data_folder_keeps_only_the_lock_files(tmp_path):
    with AzuriteTable(certificate=dev_certificate(), location=tmp_path / "data") as azurite:
        TableServiceClient.from_connection_string(azurite.connection_string).create_table("gone")
    empty_data_folder(tmp_path / "data")
    assert {p.name for p in (tmp_path / "data").iterdir()} <= {DATA_LOCK_FILE, OWNER_LOCK_FILE, GUARDIAN_LOG_FILE}
    with AzuriteTable(certificate=dev_certificate(), location=tmp_path / "data") as azurite:
        assert not list(TableServiceClient.from_connection_string(azurite.connection_string).list_tables())
