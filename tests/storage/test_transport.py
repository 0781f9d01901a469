"""The app's Table clients on their one transport: HTTPS to Azurite with the dev CA, pool size, logging, tracing, proxies, public SDK names only."""
from __future__ import annotations

import ast
import logging
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from shared.core.errors import StorageUnavailable
from shared.storage.tables import TableStore
from shared.storage.transport import DEFAULT_POOL_SIZE, HTTP_LOGGING_LOGGER, StorageTransport
from tests.conftest import ROOT


def _private_azure_imports(source: str) -> list[str]:
    """`azure...` imports in `source` that name a private module or a private name (`_x`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "azure":
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names if alias.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "azure"
                      and any(part.startswith("_") for part in alias.name.split("."))]
    return found


def test_private_azure_imports_are_found():
    source = ("from azure.core.rest._http_response_impl import HttpResponseImpl\n"
              "from azure.data.tables import _base_client\n"
              "import azure.core.pipeline.transport._requests_basic\n"
              "from azure.core.pipeline.transport import RequestsTransport\n")
    assert _private_azure_imports(source) == ["azure.core.rest._http_response_impl", "azure.data.tables._base_client",
                                              "azure.core.pipeline.transport._requests_basic"]


def test_shared_imports_no_private_azure_name():
    offenders = {str(path.relative_to(ROOT)): names for path in sorted((ROOT / "shared").rglob("*.py"))
                 if (names := _private_azure_imports(path.read_text()))}
    assert offenders == {}


@pytest.fixture
def tables(azurite):
    store = TableStore(azurite.connection_string)
    yield store
    store.close()


def _row() -> dict:
    return {"PartitionKey": "p", "RowKey": uuid.uuid4().hex, "value": 1}


@pytest.mark.stack
def test_azurite_is_reached_over_https_and_its_certificate_checked(azurite, tables, monkeypatch):
    assert azurite.connection_string.startswith("DefaultEndpointsProtocol=https;")
    table = tables.table("TransportHttps")
    row = _row()
    table.create_entity(row)
    assert table.get_entity("p", row["RowKey"])["value"] == 1
    # Without the dev CA the certificate is refused: a storage fault, as an unreachable service.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    untrusting = TableStore(azurite.connection_string)
    try:
        with pytest.raises(StorageUnavailable) as refused:
            untrusting.table("TransportHttps")
        assert "CERTIFICATE_VERIFY_FAILED" in repr(refused.value.__cause__)
    finally:
        untrusting.close()


@pytest.mark.stack
def test_a_busy_function_thread_pool_keeps_its_connections(tables, monkeypatch):
    table = tables.table("TransportPool")
    row = _row()
    table.create_entity(row)
    opened = []
    new_connection = StorageTransport._new_connection

    def counted(self, *key):
        opened.append(key)
        return new_connection(self, *key)

    monkeypatch.setattr(StorageTransport, "_new_connection", counted)
    threads = 32
    assert DEFAULT_POOL_SIZE >= threads
    start = threading.Barrier(threads)
    failures = []

    def read() -> None:
        start.wait()
        try:
            for _ in range(10):
                table.get_entity("p", row["RowKey"])
        except Exception as error:  # reported below
            failures.append(error)

    workers = [threading.Thread(target=read) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert failures == []
    # At most one connection per thread, all kept: the next 32 x 10 reads open none.
    assert 0 < len(opened) <= threads
    burst = len(opened)
    start = threading.Barrier(threads)
    workers = [threading.Thread(target=read) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert failures == []
    assert len(opened) == burst


def _one_answer_server(answer: bytes, *, close_after: bool) -> tuple[socket.socket, list[bytes]]:
    """A plain-HTTP server that reads each request's head, gives `answer`, and closes the connection after it if told."""
    server = socket.create_server(("127.0.0.1", 0))
    requests_seen: list[bytes] = []

    def handle(connection: socket.socket) -> None:
        with connection:
            while True:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                requests_seen.append(data.split(b"\r\n", 1)[0])
                connection.sendall(answer)
                if close_after:
                    return

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server, requests_seen


def _get(transport: StorageTransport, url: str):
    from azure.core.rest import HttpRequest

    return transport.send(HttpRequest("GET", url))


def test_a_connection_the_server_closed_is_not_reused():
    server, seen = _one_answer_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close_after=True)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/devstoreaccount1/Tables"
    transport = StorageTransport(url, connection_timeout=2, read_timeout=2)
    try:
        first = _get(transport, url)
        time.sleep(0.2)  # the server has closed its side by now; the pool still holds the connection
        second = _get(transport, url)
    finally:
        transport.close()
        server.close()
    assert (first.status_code, first.text(), second.status_code, second.text()) == (200, "ok", 200, "ok")
    assert len(seen) == 2


def test_kept_connections_are_reused():
    server, seen = _one_answer_server(b"HTTP/1.1 204 No Content\r\nx-ms-request-id: 1\r\n\r\n", close_after=False)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/devstoreaccount1/Tables"
    transport = StorageTransport(url, connection_timeout=2, read_timeout=2)
    opened = []
    new_connection = transport._new_connection
    transport._new_connection = lambda *key: opened.append(key) or new_connection(*key)
    try:
        answers = [_get(transport, url) for _ in range(5)]
    finally:
        transport.close()
        server.close()
    assert [a.status_code for a in answers] == [204] * 5 and answers[0].headers["X-MS-Request-Id"] == "1"
    assert len(seen) == 5 and len(opened) == 1


def test_a_refused_connection_and_a_silent_server_are_azure_core_errors():
    from azure.core.exceptions import ServiceRequestError, ServiceResponseTimeoutError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    refused = StorageTransport(f"http://127.0.0.1:{closed_port}/", connection_timeout=2, read_timeout=2)
    with pytest.raises(ServiceRequestError):
        _get(refused, f"http://127.0.0.1:{closed_port}/devstoreaccount1/Tables")
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the backlog does) and never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/devstoreaccount1/Tables"
    transport = StorageTransport(url, connection_timeout=2, read_timeout=0.3)
    try:
        with pytest.raises(ServiceResponseTimeoutError):
            _get(transport, url)
    finally:
        transport.close()
        silent.close()


@pytest.mark.stack
def test_storage_requests_are_not_logged_at_info(tables, caplog):
    # The host logs at INFO; tests/support/stack.py quiets the "azure" loggers, so undo that here.
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="azure"):
        tables.table("TransportLogging").create_entity(_row())
    assert [r for r in caplog.records if r.name == HTTP_LOGGING_LOGGER] == []


@pytest.mark.stack
def test_storage_requests_are_traced(tables):
    from azure.core.settings import settings
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    table = tables.table("TransportTracing")  # created before tracing starts
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())  # once per process: OpenTelemetry keeps the first
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    row = _row()
    settings.tracing_enabled.set_value(True)
    try:
        table.create_entity(row)
        table.get_entity("p", row["RowKey"])
    finally:
        settings.tracing_enabled.unset_value()
    exporter.shutdown()
    # DistributedTracingPolicy makes one span per HTTP request (the SDK's method spans come from decorators).
    spans = exporter.get_finished_spans()
    assert [(span.name, span.kind.name) for span in spans if span.kind.name == "CLIENT"] == [
        ("POST", "CLIENT"), ("GET", "CLIENT")]


def _recording_proxy() -> tuple[socket.socket, list[bytes]]:
    """A listening socket that records the first line of each connection and closes it."""
    server = socket.create_server(("127.0.0.1", 0))
    lines: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                lines.append(connection.recv(4096).split(b"\r\n", 1)[0])

    threading.Thread(target=serve, daemon=True).start()
    return server, lines


def test_a_proxy_in_the_environment_is_used(monkeypatch):
    proxy, lines = _recording_proxy()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    store = TableStore("DefaultEndpointsProtocol=https;AccountName=anteroomproxycheck;"
                       "AccountKey=a2V5;EndpointSuffix=core.windows.net")
    try:
        with pytest.raises(StorageUnavailable):
            store.table("Probe")
    finally:
        store.close()
        proxy.close()
    assert lines and lines[0].startswith(b"CONNECT anteroomproxycheck.table.core.windows.net:443 ")
