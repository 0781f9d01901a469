"""A throw-away in-memory Azurite Table service (HTTPS, the tests' dev CA) for storage tests."""
from __future__ import annotations

import contextlib
from typing import Iterator

from localdev.azurite import AzuriteTable
from tests.conftest import dev_certificate
from tests.support.answers import ANSWERS


@contextlib.contextmanager
def azurite_tables() -> Iterator[str]:
    """Yield a connection string to a fresh Azurite Table service; stops it afterwards."""
    with AzuriteTable(certificate=dev_certificate()) as azurite:
        ANSWERS.tooling(azurite.endpoint, "Azurite")
        yield azurite.connection_string
