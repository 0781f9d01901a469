"""Azure Table storage clients: one service client per process, one table client per table, built on first use."""
from __future__ import annotations

import threading

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient

from .faults import storage_faults
from .transport import LeanPipeline, lean_policies, table_transport

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
    Every client shares one transport: the lean one and its policy list (shared/storage/transport.py)
    where it applies, else the service client's.
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
        self._transport = None
        self._pipeline: LeanPipeline | None = None
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    def _fresh_policies(self) -> list | None:
        """The policies the SDK gives its clients (signing, retries, hosts), as new instances.

        New, because a pipeline links its policies to one another: sharing the service client's
        instances would let its next pipeline re-link ours. None (use the SDK's defaults) if this
        azure-data-tables version builds them differently.
        """
        try:
            return self._service._configure_policies(hosts=self._service._hosts, **STORAGE_CLIENT_OPTIONS)
        except (AttributeError, TypeError):
            return None

    def _service_client(self) -> TableServiceClient:
        if self._connection_string is not None:
            return TableServiceClient.from_connection_string(self._connection_string, **STORAGE_CLIENT_OPTIONS)
        return TableServiceClient(self._account_url, credential=self._credential, **STORAGE_CLIENT_OPTIONS)

    def _table_client(self, name: str, **kwargs) -> TableClient:
        if self._connection_string is not None:
            return TableClient.from_connection_string(self._connection_string, name, **kwargs, **STORAGE_CLIENT_OPTIONS)
        return TableClient(self._account_url, name, credential=self._credential, **kwargs, **STORAGE_CLIENT_OPTIONS)

    def table(self, name: str) -> TableClient:
        client = self._tables.get(name)
        if client is not None:
            return client
        with self._lock:
            if name not in self._tables:
                if self._service is None:
                    self._service = self._service_client()
                    self._transport = table_transport(
                        self._service.url,
                        connection_timeout=STORAGE_CLIENT_OPTIONS["connection_timeout"],
                        read_timeout=STORAGE_CLIENT_OPTIONS["read_timeout"],
                    )
                    if self._transport is not None:
                        policies = self._fresh_policies()
                        if policies:
                            self._pipeline = LeanPipeline(self._transport, lean_policies(policies))
                with storage_faults():
                    try:
                        self._service.create_table(name)
                    except ResourceExistsError:
                        pass
                if self._pipeline is not None:
                    self._tables[name] = self._table_client(name, pipeline=self._pipeline)
                else:
                    # Without the lean pipeline, share the service client's transport (one session and
                    # connection pool for every table) rather than a new one per table.
                    self._tables[name] = self._service.get_table_client(name)
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
            self._pipeline = None
