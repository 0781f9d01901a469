"""Azure Table storage clients: one service client per process, one table client per table, built on first use."""
from __future__ import annotations

import threading

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient

from .faults import storage_faults
from .transport import quiet_http_logging, storage_transport

# The SDK's defaults (10 retries with back-off up to 2 minutes, 300 s timeouts) would hold a request
# for minutes while storage is down. A client request should fail fast with 503 + Retry-After and
# let the caller retry, so: 2 quick retries (about 1 s in all), 3 s to connect, 30 s to answer.
STORAGE_CLIENT_OPTIONS = {
    "retry_total": 2,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 2,
    "connection_timeout": 3,
    "read_timeout": 30,
}


class TableStore:
    """One TableServiceClient per process and one TableClient per table, created on first use.

    Tables are created once, on the first use of each name, so a fresh Azurite needs no set-up step.
    Every client sends through the service client's transport (shared/storage/transport.py) and
    the SDK's own policy list.
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
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    def _service_client(self) -> TableServiceClient:
        if self._service is None:
            quiet_http_logging()
            if self._connection_string is not None:
                # The endpoint as the SDK reads it from the connection string (no request is sent).
                with TableServiceClient.from_connection_string(self._connection_string) as unsent:
                    endpoint = unsent.url
            else:
                endpoint = self._account_url
            transport = storage_transport(endpoint, connection_timeout=STORAGE_CLIENT_OPTIONS["connection_timeout"],
                                          read_timeout=STORAGE_CLIENT_OPTIONS["read_timeout"])
            if self._connection_string is not None:
                self._service = TableServiceClient.from_connection_string(
                    self._connection_string, transport=transport, **STORAGE_CLIENT_OPTIONS)
            else:
                self._service = TableServiceClient(self._account_url, credential=self._credential,
                                                   transport=transport, **STORAGE_CLIENT_OPTIONS)
        return self._service

    def table(self, name: str) -> TableClient:
        client = self._tables.get(name)
        if client is not None:
            return client
        with self._lock:
            if name not in self._tables:
                service = self._service_client()
                with storage_faults():
                    try:
                        service.create_table(name)
                    except ResourceExistsError:
                        pass
                # The SDK's table client on the service client's transport: one Session and pool.
                self._tables[name] = service.get_table_client(name)
            return self._tables[name]

    def close(self) -> None:
        with self._lock:
            for client in self._tables.values():
                client.close()
            if self._service is not None:
                self._service.close()
            self._tables.clear()
            self._service = None
