"""The lean Table storage transport writes and reads exactly what azure-core's own code does."""
from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from unittest import mock

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline import Pipeline
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.data.tables import TableClient, TableTransactionError
from urllib3 import HTTPHeaderDict

from shared.storage import transport as table_transport
from shared.storage.transport import (
    LeanPipeline,
    TableTransport,
    _PlainResponse,
    _Response,
)

CONNECTION = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tqlyhuY4shVtyXYRuuvW+KjdGw==;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
OPERATIONS = [
    ("upsert", {"PartitionKey": "p", "RowKey": "a", "X": 1, "Text": "caf\u00e9 \"quoted\" \\ back"}),
    ("create", {"PartitionKey": "p", "RowKey": "b"}),
    ("update", {"PartitionKey": "p", "RowKey": "c", "N": 2.5}),
    ("delete", {"PartitionKey": "p", "RowKey": "d"}),
]


def _answer(boundary: str, changeset: str, parts: list[bytes]) -> bytes:
    inner = b"".join(
        f"--changesetresponse_{changeset}\r\nContent-Type: application/http\r\n"
        f"Content-Transfer-Encoding: binary\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    return (
        f"--batchresponse_{boundary}\r\nContent-Type: multipart/mixed; "
        f"boundary=changesetresponse_{changeset}\r\n\r\n".encode()
        + inner
        + f"--changesetresponse_{changeset}--\r\n--batchresponse_{boundary}--\r\n".encode()
    )


SUCCESS = [
    b"HTTP/1.1 204 No Content\r\nDataServiceVersion: 3.0;\r\nETag: W/\"datetime'2026-11-24T16%3A55%3A11.1Z'\"\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nDataServiceVersion: 3.0;\r\nETag: W/\"datetime'2026-11-24T16%3A55%3A11.2Z'\"\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nETag: W/\"datetime'2026-11-24T16%3A55%3A11.3Z'\"\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
]
FAILURE = [
    (b"HTTP/1.1 409 Conflict\r\nContent-ID: 2\r\nDataServiceVersion: 3.0;\r\n"
    b"Content-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n\r\n"
    b'{"odata.error":{"code":"EntityAlreadyExists","message":{"lang":"en-US","value":"1:The specified entity already exists."}}}')
]


class CannedTransport(HttpTransport):
    """Records batch bodies and answers each with the canned parts, echoing the request's boundaries."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.bodies: list[bytes] = []

    def send(self, request, **kwargs):
        body = request.content
        self.bodies.append(body)
        batch = re.search(rb"--batch_([0-9a-f-]+)", body).group(1).decode()
        changeset = re.search(rb"boundary=changeset_([0-9a-f-]+)", body).group(1).decode()
        headers = HTTPHeaderDict({"Content-Type": f"multipart/mixed; boundary=batchresponse_{batch}"})
        return _Response(request, _PlainResponse(202, "Accepted", headers), _answer(batch, changeset, self.parts))

    def open(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *args):
        pass


def _client(transport: HttpTransport, lean: bool) -> TableClient:
    client = TableClient.from_connection_string(CONNECTION, "probe", transport=transport)
    if lean:
        policies = client._configure_policies(hosts=client._hosts)
        client = TableClient.from_connection_string(
            CONNECTION, "probe", pipeline=LeanPipeline(transport, table_transport.lean_policies(policies))
        )
    return client


def _normalised(body: bytes) -> bytes:
    return re.sub(rb"(x-ms-date|Date): [^\r]+", rb"\1: <date>", body)


def _deterministic_uuids():
    counter = iter(range(1000))
    return mock.patch("azure.data.tables._base_client.uuid4", lambda: uuid.UUID(int=next(counter)))


def test_batch_body_is_byte_for_byte_azure_cores():
    bodies = {}
    for lean in (False, True):
        transport = CannedTransport(SUCCESS)
        with _deterministic_uuids():
            _client(transport, lean).submit_transaction(OPERATIONS)
        bodies[lean] = _normalised(transport.bodies[0])
    assert b"Content-ID: 3" in bodies[True]
    assert bodies[True] == bodies[False]


def test_batch_answers_parse_like_azure_cores():
    transport = CannedTransport(SUCCESS)
    result = _client(transport, True).submit_transaction(OPERATIONS)
    assert [entry.get("etag") for entry in result] == [
        "W/\"datetime'2026-11-24T16%3A55%3A11.1Z'\"",
        "W/\"datetime'2026-11-24T16%3A55%3A11.2Z'\"",
        "W/\"datetime'2026-11-24T16%3A55%3A11.3Z'\"",
        None,
    ]


@pytest.mark.parametrize("parts", [SUCCESS, FAILURE])
def test_parts_match_azure_core_parser(parts):
    transport = CannedTransport(parts)
    captured = []
    original = _Response.parts

    def spy(self):
        ours = original(self)
        theirs = list(HttpResponseImpl.parts(self))
        captured.append((ours, theirs))
        return ours

    with mock.patch.object(_Response, "parts", spy):
        try:
            _client(transport, True).submit_transaction(OPERATIONS)
        except TableTransactionError:
            pass
    ours, theirs = captured[0]
    assert len(ours) == len(theirs) == len(parts)
    for mine, reference in zip(ours, theirs):
        assert mine.status_code == reference.status_code
        assert mine.request is reference.request
        assert dict(mine.headers.items()) == dict(reference.headers.items())
        assert mine.content == reference.read()


def test_failed_transaction_raises_the_sdks_error():
    with pytest.raises(TableTransactionError) as raised:
        _client(CannedTransport(FAILURE), True).submit_transaction(OPERATIONS)
    assert raised.value.error_code == "EntityAlreadyExists"
    assert "1:The specified entity already exists." in str(raised.value)


def _part_policy(policy_class):
    """A patch giving batches `policy_class` as their part policy; the client's own pipeline keeps the SDK's."""
    from azure.data.tables import _base_client

    return mock.patch.object(_base_client, "StorageHeadersPolicy", policy_class)


def test_fallback_layout_runs_the_part_policies_once():
    from azure.data.tables._policies import StorageHeadersPolicy

    bodies, calls = {}, {}
    for lean in (False, True):
        calls[lean] = seen = []

        class Counting(StorageHeadersPolicy):
            def on_request(self, request):
                seen.append(request.http_request)
                super().on_request(request)

        transport = CannedTransport(SUCCESS)
        client = _client(transport, lean)
        with _deterministic_uuids(), _part_policy(Counting), mock.patch.object(
            table_transport, "_multipart_body", side_effect=ValueError("a layout it does not write")
        ) as multipart_body:
            client.submit_transaction(OPERATIONS)
        assert multipart_body.called == lean
        bodies[lean] = _normalised(transport.bodies[0])
    # The four operations and their changeset, each once, as azure-core runs them.
    assert len(calls[True]) == len(calls[False]) == len(OPERATIONS) + 1
    assert len({id(request) for request in calls[True]}) == len(calls[True])
    assert bodies[True] == bodies[False]


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_async_part_policy_is_refused_as_azure_core_refuses_it():
    from azure.data.tables._policies import StorageHeadersPolicy

    class AsyncPolicy(StorageHeadersPolicy):
        async def on_request(self, request):
            pass

    for lean in (False, True):
        transport = CannedTransport(SUCCESS)
        client = _client(transport, lean)
        with _part_policy(AsyncPolicy), pytest.raises(TypeError, match="awaitable"):
            client.submit_transaction(OPERATIONS)
        assert transport.bodies == []


def test_non_batch_pipeline_run_is_untouched():
    assert issubclass(LeanPipeline, Pipeline)
    assert table_transport.lean_policies(_client(CannedTransport([]), False)._configure_policies(hosts={}))


class _OneShotServer:
    """A loopback HTTP server answering each connection's requests from a script."""

    def __init__(self, script):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        for action in self.script:
            connection, _ = self.sock.accept()
            action(self, connection)


def _read_request(server, connection) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1)) if b"Content-Length" in head else 0
    while len(rest) < length:
        rest += connection.recv(65536)
    server.requests.append(head + b"\r\n\r\n" + rest)
    return data


def _get(transport: TableTransport, port: int, method: str = "GET", body: bytes | None = None):
    from azure.core.rest import HttpRequest

    return transport.send(HttpRequest(method, f"http://127.0.0.1:{port}/devstoreaccount1/t?x=1", content=body))


def test_plain_pool_chunked_and_keep_alive():
    def serve(server, connection):
        for _ in range(2):
            _read_request(server, connection)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                               b"ETag: W/\"1\"\r\n\r\n5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n")
        connection.close()

    server = _OneShotServer([serve])
    transport = TableTransport()
    first, second = _get(transport, server.port), _get(transport, server.port, "POST", b'{"k": 2}')
    assert first.status_code == second.status_code == 200
    assert first.json() == {"a": 1} and first.headers["etag"] == 'W/"1"'
    assert server.requests[0].startswith(b"GET /devstoreaccount1/t?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert server.requests[1].endswith(b'Content-Length: 8\r\n\r\n{"k": 2}')
    transport.close()


def test_plain_pool_stale_connection_is_retried_for_reads_only():
    def answer_then_close(server, connection):
        _read_request(server, connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        _read_request(server, connection)  # the next request on this connection: closed unanswered
        connection.close()

    def answer(server, connection):
        _read_request(server, connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    server = _OneShotServer([answer_then_close, answer, answer_then_close])
    transport = TableTransport()
    assert _get(transport, server.port).status_code == 200
    assert _get(transport, server.port).status_code == 200  # retried on a new connection
    transport.close()
    assert _get(transport, server.port).status_code == 200
    with pytest.raises(ServiceResponseError):
        _get(transport, server.port, "POST", b"{}")  # a write is never sent twice


def test_plain_pool_refused_connection_is_a_request_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ServiceRequestError):
        _get(TableTransport(), port)


def test_https_goes_through_urllib3_and_verifies_the_certificate(tmp_path):
    import ssl

    from localdev.certs import ensure_dev_certificate

    certificate = ensure_dev_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.server_cert, certificate.server_key)

    def answer(server, connection):
        with context.wrap_socket(connection, server_side=True) as tls:
            _read_request(server, tls)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"a\": 1}")

    server = _OneShotServer([answer])
    transport = TableTransport(connection_verify=str(certificate.ca_cert))
    from azure.core.rest import HttpRequest

    response = transport.send(HttpRequest("GET", f"https://127.0.0.1:{server.port}/devstoreaccount1/t"))
    assert response.status_code == 200 and response.json() == {"a": 1}
    assert server.requests[0].startswith(b"GET /devstoreaccount1/t HTTP/1.1\r\n")
    transport.close()

    def handshake(server, connection):
        try:
            context.wrap_socket(connection, server_side=True).close()
        except (ssl.SSLError, OSError):  # the client refuses the certificate
            connection.close()

    untrusting = _OneShotServer([handshake])
    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):  # the system store lacks the dev CA
        TableTransport().send(HttpRequest("GET", f"https://127.0.0.1:{untrusting.port}/t"))


def test_a_proxy_in_the_environment_keeps_the_sdks_transport(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(table_transport.table_transport("https://acct.table.core.windows.net"), TableTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert table_transport.table_transport("https://acct.table.core.windows.net") is None
    monkeypatch.setenv("NO_PROXY", ".core.windows.net")
    assert isinstance(table_transport.table_transport("https://acct.table.core.windows.net"), TableTransport)


def test_plain_pool_drops_a_connection_the_server_closed_while_idle():
    closed = threading.Event()

    def answer_and_close(server, connection):
        _read_request(server, connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        connection.close()
        closed.set()

    def answer(server, connection):
        _read_request(server, connection)
        connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")

    server = _OneShotServer([answer_and_close, answer])
    transport = TableTransport()
    assert _get(transport, server.port).status_code == 200
    assert closed.wait(5)
    time.sleep(0.1)  # the server's FIN, sent on close, reaches the idle connection
    assert _get(transport, server.port, "POST", b"{}").status_code == 201  # a new connection, no error
    transport.close()


def test_plain_pool_never_reuses_a_connection_whose_answer_was_cut_short():
    def cut_short(server, connection):
        _read_request(server, connection)
        # One whole chunk, then nothing: the client's buffer is empty when its read times out.
        connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n")
        server.held = connection  # left open: the client times out waiting for the rest

    def answer(server, connection):
        _read_request(server, connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    server = _OneShotServer([cut_short, answer])
    transport = TableTransport(read_timeout=0.2)
    with pytest.raises(ServiceResponseError):  # a read timeout half way through the body
        _get(transport, server.port)
    assert _get(transport, server.port).json() == {}  # on a new connection
    transport.close()
