"""Stopping a host: the log records of its last requests are written before the process ends."""
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import requests

from localdev.azurite import REPO_ROOT, AzuriteTable
from localdev.host import READY_PREFIX
from localdev.testing import local_service
from tests.conftest import dev_certificate
from shared.logs.operations import DEFAULT_TABLE_NAME, read_operation_records
from shared.storage.tables import TableStore

from tests.support.answers import ANSWERS

pytestmark = pytest.mark.stack


def test_records_still_queued_at_sigterm_are_written():
    with local_service(certificate=dev_certificate()) as service:
        host = service.hosts[0]
        ANSWERS.serve(service.base_url, service.ca_file)
        ANSWERS.tooling(service.azurite.endpoint, "Azurite")
        since = datetime.now(timezone.utc) - timedelta(seconds=1)
        unsigned = requests.get(f"{service.base_url}/rooms/99999999999999996?api-version=2025-03-13",
                                verify=service.ca_file, timeout=10)
        assert unsigned.status_code == 401
        # At once: the writer flushes once a second, so the record is still queued in the host.
        host.process.send_signal(signal.SIGTERM)
        assert host.process.wait(timeout=30) == 0
        records = _read_records(service.storage_connection_string, "99999999999999996", since)
    assert [(r["OperationName"], r["ResultSignature"]) for r in records] == [("GetRoom", "401")]


def test_ctrl_c_on_run_writes_the_last_records_before_azurite_stops(tmp_path):
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "localdev", "run", "--port", "0", "--state-dir", str(state),
         "--no-eventgrid", "--no-pstn"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        announced = {}
        for line in process.stdout:
            name, _, value = line.strip().removeprefix("localdev: ").partition(": ")
            announced[name] = value
            if line.startswith(READY_PREFIX):
                break
        endpoint = announced["connection string"].split(";")[0].removeprefix("endpoint=")
        ANSWERS.serve(endpoint, announced["CA certificate"])
        ANSWERS.tooling(announced["storage"], "Azurite")
        since = datetime.now(timezone.utc) - timedelta(seconds=1)
        unsigned = requests.get(f"{endpoint}rooms/99999999999999995?api-version=2025-03-13",
                                verify=announced["CA certificate"], timeout=10)
        assert unsigned.status_code == 401
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    # Azurite kept its data on disk: start it again on the same folder and look.
    with AzuriteTable(certificate=dev_certificate(), location=state / "azurite") as azurite:
        ANSWERS.tooling(azurite.endpoint, "Azurite")
        records = _read_records(azurite.connection_string, "99999999999999995", since)
    assert [(r["OperationName"], r["ResultSignature"]) for r in records] == [("GetRoom", "401")]


def _read_records(storage_connection_string: str, room_id: str, since: datetime) -> list[dict]:
    """The operation records of `room_id`, from the table of the default prefix both hosts here use."""
    store = TableStore(storage_connection_string)
    try:
        table = store.table(DEFAULT_TABLE_NAME)
        return [r for r in read_operation_records(table, since=since) if r.get("RoomId") == room_id]
    finally:
        store.close()
