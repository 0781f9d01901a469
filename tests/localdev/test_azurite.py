"""Azurite's Table service: start, real table operations, persistence, stop without leftovers."""

import os

import pytest
from azure.data.tables import TableServiceClient

from localdev.azurite import AzuriteNotInstalled, AzuriteTable
from tests.conftest import dev_certificate


def _process_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it no longer runs.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] == "Z"


def test_in_memory_table_round_trip_and_clean_stop():
    with AzuriteTable(certificate=dev_certificate()) as azurite:
        assert azurite.connection_string.endswith(
            f"TableEndpoint=https://127.0.0.1:{azurite.port}/devstoreaccount1;")
        service = TableServiceClient.from_connection_string(azurite.connection_string)
        table = service.create_table("localdevcheck")
        table.create_entity({"PartitionKey": "p", "RowKey": "r", "value": 42})
        assert table.get_entity("p", "r")["value"] == 42
        pid = azurite.process.pid
    assert azurite.process is None
    assert _process_gone(pid)


def test_data_folder_survives_a_restart(tmp_path):
    with AzuriteTable(certificate=dev_certificate(), location=tmp_path / "data") as azurite:
        service = TableServiceClient.from_connection_string(azurite.connection_string)
        service.create_table("kept").create_entity({"PartitionKey": "p", "RowKey": "r", "v": "x"})
    with AzuriteTable(certificate=dev_certificate(), location=tmp_path / "data") as azurite:
        service = TableServiceClient.from_connection_string(azurite.connection_string)
        assert service.get_table_client("kept").get_entity("p", "r")["v"] == "x"


def test_missing_node_modules_says_to_run_npm_ci(tmp_path):
    with pytest.raises(AzuriteNotInstalled, match="npm ci"):
        AzuriteTable(certificate=dev_certificate(), repo_root=tmp_path).start()
