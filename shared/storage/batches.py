"""Azure Table transaction batching: per-partition chunks of at most 100, and a background batch writer."""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import UpdateMode

from ..core.errors import StorageUnavailable
from .tables import TableStore
from .transactions import MAX_TRANSACTION_OPERATIONS, chunked

# Characters Azure refuses in PartitionKey and RowKey values, plus "%" so the escaping is reversible.
_KEY_ESCAPES = {ord(char): f"%{ord(char):02X}" for char in "%/\\#?"} | {
    code: f"%{code:02X}" for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))
}

_log = logging.getLogger(__name__)


def escape_key(text: str) -> str:
    """Make `text` safe inside a PartitionKey or RowKey by percent-escaping the characters Azure refuses."""
    return text.translate(_KEY_ESCAPES)


def transaction_batches(operations: Iterable[tuple]) -> Iterator[list[tuple]]:
    """Group `(verb, entity[, options])` operations by PartitionKey into transactions Azure accepts.

    Every batch has one partition and at most 100 operations (checked by
    `shared.storage.transactions.check_transaction`, which raises TransactionTooLarge otherwise).
    Partitions come out in the order they first appear; operations keep their order within a
    partition. Raises KeyError for an entity without a PartitionKey.
    """
    by_partition: dict[str, list[tuple]] = {}
    for operation in operations:
        by_partition.setdefault(operation[1]["PartitionKey"], []).append(operation)
    for group in by_partition.values():
        yield from chunked(group)


def _is_transient(error: BaseException) -> bool:
    """True for storage errors worth retrying: network faults, throttling, timeouts and 5xx.

    TableStore reports the first and the last as StorageUnavailable when it creates a table.
    """
    if isinstance(error, (StorageUnavailable, ServiceRequestError, ServiceResponseError)):
        return True
    if isinstance(error, HttpResponseError):
        status = error.status_code or 0
        return status >= 500 or status in (408, 429)
    return False


def _create_table(client: Any) -> None:
    try:
        client.create_table()
    except ResourceExistsError:
        pass


def _is_missing_table(error: BaseException) -> bool:
    return isinstance(error, ResourceNotFoundError) and "TableNotFound" in str(error)


TableSource = Any  # a connection string, a TableServiceClient, or a callable(table_name) -> TableClient


class BackgroundTableWriter:
    """Upserts entities into Table storage from a daemon thread, in transactions Azure accepts.

    `write()` only enqueues and never blocks or raises: when the bounded queue is full the entity is
    dropped and counted. The thread flushes every `flush_interval` seconds, or as soon as 100
    entities are pending, as one transaction per (table, partition) chunk of at most 100. Transient
    storage errors are retried with the backoff in `retry_delays`; a batch that still fails is
    dropped, counted and logged. Tables are created on first use. Nothing touches storage and no
    thread starts until the first write.

    `source` is a connection string, a TableServiceClient, or a callable that returns a TableClient
    for a table name.
    """

    def __init__(
        self,
        source: TableSource,
        *,
        max_queue: int = 10_000,
        flush_interval: float = 0.2,
        retry_delays: Sequence[float] = (0.1, 0.5, 1.0, 2.0, 5.0),
        merge: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        self._source = source
        self._queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(maxsize=max_queue)
        self._flush_interval = flush_interval
        self._retry_delays = tuple(retry_delays)
        self._merge = merge
        self._log = logger or _log
        self._tables: dict[str, Any] = {}
        self._store: TableStore | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # enqueued and not yet written or dropped
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0

    def write(self, table_name: str, entity: Mapping[str, Any]) -> None:
        """Queue one entity for `table_name`; drops and counts it if the queue is full or closed."""
        if not isinstance(entity, Mapping) or "PartitionKey" not in entity or "RowKey" not in entity:
            self._count_dropped(1, "an entity without PartitionKey and RowKey")
            return
        try:
            with self._lock:
                if self._closed:
                    raise queue.Full
                self._queue.put_nowait((table_name, dict(entity)))
                self._pending += 1
                pending = self._pending
                self._start_thread_locked()
        except queue.Full:
            self._count_dropped(1, "the log queue is full or closed")
            return
        except Exception:  # a broken logger must still not break the request that logs
            self._count_dropped(1, "the entity could not be queued")
            return
        if pending >= MAX_TRANSACTION_OPERATIONS:
            self._wake.set()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Write everything queued so far; True if it was all written or dropped within `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining if remaining is None else min(remaining, 0.05))
                self._wake.set()
        return True

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, stop the thread and refuse later writes; True if everything was flushed in time."""
        flushed = self.flush(timeout)
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        self._close_clients()
        return flushed

    # --- background thread -------------------------------------------------------------------

    def _start_thread_locked(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="table-batch-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            batch = self._drain()
            if batch:
                self._write_batch(batch)
            with self._lock:
                if self._closed and self._queue.empty():
                    self._idle.notify_all()
                    return

    def _drain(self) -> list[tuple[str, dict[str, Any]]]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _write_batch(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        # A transaction may name an entity only once: records for one row fold into one write
        # (merged in merge mode, the last one otherwise); the counters still count records.
        by_table: dict[str, dict[tuple[str, str], tuple[dict[str, Any], int]]] = {}
        for table_name, entity in items:
            rows = by_table.setdefault(table_name, {})
            key = (entity["PartitionKey"], entity["RowKey"])
            earlier, records = rows.get(key, ({}, 0))
            rows[key] = ({**earlier, **entity} if self._merge else dict(entity), records + 1)
        mode = self._update_mode()
        for table_name, rows in by_table.items():
            operations = [("upsert", entity, mode) for entity, _ in rows.values()]
            for chunk in transaction_batches(operations):
                records = sum(rows[(entity["PartitionKey"], entity["RowKey"])][1] for _, entity, _ in chunk)
                written = self._submit_with_retries(table_name, chunk)
                with self._idle:
                    if written:
                        self.written += records
                    else:
                        self.dropped += records
                    self._pending -= records
                    self._idle.notify_all()

    def _update_mode(self) -> Any:
        return {"mode": UpdateMode.MERGE if self._merge else UpdateMode.REPLACE}

    def _submit_with_retries(self, table_name: str, chunk: list[tuple]) -> bool:
        for attempt in range(len(self._retry_delays) + 1):
            try:
                self._table(table_name).submit_transaction(chunk)
                return True
            except Exception as error:  # noqa: BLE001 - the writer must survive any storage failure
                if _is_missing_table(error):  # deleted since we opened it; recreate, then retry
                    with contextlib.suppress(Exception):
                        _create_table(self._table(table_name))
                elif not _is_transient(error):
                    self._log.error("dropping %d log entities for table %s: %s", len(chunk), table_name, error)
                    return False
                if attempt == len(self._retry_delays):
                    self._log.error(
                        "dropping %d log entities for table %s after %d attempts: %s",
                        len(chunk), table_name, attempt + 1, error,
                    )
                    return False
                time.sleep(self._retry_delays[attempt])
        return False

    # --- clients -------------------------------------------------------------------------------

    def _table(self, table_name: str) -> Any:
        client = self._tables.get(table_name)
        if client is None:
            client = self._tables[table_name] = self._open_table(table_name)
        return client

    def _open_table(self, table_name: str) -> Any:
        """A client for `table_name`, creating the table if needed (TableStore does so itself)."""
        if isinstance(self._source, str):
            if self._store is None:
                self._store = TableStore(self._source)
            return self._store.table(table_name)
        if hasattr(self._source, "get_table_client"):
            self._source.create_table_if_not_exists(table_name)
            return self._source.get_table_client(table_name)
        client = self._source(table_name)
        _create_table(client)
        return client

    def _close_clients(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = None
        self._tables.clear()

    def _count_dropped(self, count: int, reason: str) -> None:
        with self._lock:
            self.dropped += count
            dropped = self.dropped
        # Log the first drop and then every 1000th, so an outage cannot flood the log.
        if dropped == count or dropped // 1000 != (dropped - count) // 1000:
            self._log.warning("dropped %d log entities so far: %s", dropped, reason)

