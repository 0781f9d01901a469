"""Azure Table storage clients: one pipeline and service client per process, one table client per table, built on first use."""
from __future__ import annotations

import threading

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient

from .faults import storage_faults
from .pipeline import StoragePipeline, storage_policies
from .transport import StorageTransport, quiet_http_logging

# The SDK's defaults (10 retries with back-off up to 2 minutes, 300 s timeouts) would hold a request
# for minutes while storage is down. A client request should fail fast with 503 + Retry-After and
# let the caller retry, so: 2 quick retries (about 1 s in all), 3 s to connect, 30 s to answer.
STORAGE_RETRIES = {"retry_total": 2, "retry_backoff_factor": 0.5, "retry_backoff_max": 2}
CONNECTION_TIMEOUT = 3
READ_TIMEOUT = 30


class TableStore:
    """One TableServiceClient per process and one TableClient per table, created on first use.

    Tables are created once, on the first use of each name, so a fresh Azurite needs no set-up step.
    Every client sends through one pipeline (shared/storage/pipeline.py) on one transport
    (shared/storage/transport.py), to Azure Storage and to Azurite alike.
    """

    def __init__(self, connection_string: str | None = None, *, account_url: str | None = None,
                 credential: TokenCredential | None = None) -> None:
        """Either a connection string (account key or SAS inside), or the Table endpoint with an
        Entra token credential (a managed identity in Azure)."""
        if (connection_string is None) == (account_url is None) or (account_url is not None and credential is None):
            raise ValueError("give a connection string, or an account URL with a token credential")
        self._connection_string = connection_string
        self._account_url = account_url
        self._credential = credential
        self._service: TableServiceClient | None = None
        self._transport: StorageTransport | None = None
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    def _open(self) -> TableServiceClient:
        """The service client on a new pipeline; the caller holds the lock."""
        quiet_http_logging()
        if self._connection_string is not None:
            # The SDK reads the endpoint and the credential (key or SAS) out of the connection string.
            parsed = TableServiceClient.from_connection_string(self._connection_string)
            endpoint, credential = parsed.url, parsed.credential
        else:
            endpoint, credential = self._account_url, self._credential
        self._endpoint, self._client_credential = endpoint, credential
        self._transport = StorageTransport(endpoint, connection_timeout=CONNECTION_TIMEOUT, read_timeout=READ_TIMEOUT)
        self._pipeline = StoragePipeline(self._transport, storage_policies(credential, **STORAGE_RETRIES))
        return TableServiceClient(endpoint, credential=credential, pipeline=self._pipeline)

    def table(self, name: str) -> TableClient:
        client = self._tables.get(name)
        if client is not None:
            return client
        with self._lock:
            if name not in self._tables:
                if self._service is None:
                    self._service = self._open()
                with storage_faults():
                    try:
                        self._service.create_table(name)
                    except ResourceExistsError:
                        pass
                self._tables[name] = TableClient(self._endpoint, name, credential=self._client_credential,
                                                 pipeline=self._pipeline)
            return self._tables[name]

    def close(self) -> None:
        with self._lock:
            for client in self._tables.values():
                client.close()
            if self._service is not None:
                self._service.close()
            if self._transport is not None:
                self._transport.close()
            self._tables.clear()
            self._service = None
            self._transport = None
