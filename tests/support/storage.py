"""Storage for the store contract tests: one Azurite per session, and each test's rows in a MemoryTable or a fresh Table on it (fixtures)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from itertools import groupby
from typing import Callable, Iterable, TypeVar

import pytest

from localdev.azurite import AzuriteTable
from tests.conftest import dev_certificate
from shared.storage.memory import MemoryTable, Write
from shared.storage.tables import TableStore

from .answers import ANSWERS

Store = TypeVar("Store")


@pytest.fixture(scope="session")
def azurite(starts_processes):
    """Azurite's Table service in memory, started once per session for the store contract tests."""
    with AzuriteTable(certificate=dev_certificate()) as running:
        ANSWERS.tooling(running.endpoint, "Azurite")
        yield running


@pytest.fixture(scope="session")
def azurite_tables(azurite):
    tables = TableStore(azurite.connection_string)
    yield tables
    tables.close()


@dataclass
class Storage:
    """Where one contract test keeps its rows: `memory` for the twins, or `tables` and a new `table_name` for the Table stores."""

    memory: MemoryTable | None = None
    tables: TableStore | None = None
    table_name: str = ""

    def build(self, twin: Callable[[MemoryTable], Store], table_store: Callable[[TableStore, str], Store]) -> Store:
        """The store under test: `twin(memory)`, or `table_store(tables, table_name)`."""
        if self.memory is not None:
            return twin(self.memory)
        return table_store(self.tables, self.table_name)

    def create_rows(self, entities: Iterable[dict]) -> None:
        """Insert entities as they are, a transaction per partition (as a call change writes its outbox rows)."""
        for partition, rows in groupby(entities, key=lambda entity: entity["PartitionKey"]):
            rows = list(rows)
            if self.memory is not None:
                self.memory.commit([Write("create", partition, row["RowKey"], dict(row)) for row in rows])
            else:
                self.tables.table(self.table_name).submit_transaction([("create", row) for row in rows])


@pytest.fixture(params=["memory", pytest.param("table", marks=pytest.mark.stack)])
def storage(request) -> Storage:
    """Each store contract test twice: on the in-memory twin and, marked `stack`, on the Table store on Azurite."""
    if request.param == "memory":
        return Storage(memory=MemoryTable())
    return Storage(tables=request.getfixturevalue("azurite_tables"), table_name=f"Contract{uuid.uuid4().hex}")
