"""A lean azure-core transport and pipeline for the app's Table storage clients.

azure-data-tables stays the storage API; only what carries its requests changes.

- `TableTransport`: the SDK's default transport goes through a requests Session, which per
  request scans the environment for proxies, netrc and CA bundles (trust_env), merges cookie jars
  and builds a PreparedRequest, and http.client then parses every answer's headers with the email
  package; for one point read that was most of the app's own CPU. Plain-HTTP endpoints (Azurite)
  get keep-alive sockets and a minimal HTTP/1.1 reader (`_PlainHttpPool`); HTTPS endpoints (Azure)
  get a urllib3 pool. Either way the pool is sized for the function thread pool and the whole
  body is read before returning.
- `LeanPipeline`: batch (transaction) bodies written with string joins instead of the email
  package, and `_Response.parts()` splits batch answers on their boundaries directly; both fall
  back to azure-core's code for anything unexpected.
- `lean_policies`: the SDK's own policy list minus the policies that do nothing here (proxies,
  redirects, custom hooks, tracing) and the HTTP logging policy, which logs every storage request
  and answer, headers included, at INFO.

Proxies: the environment is read once when the transport is built; when a proxy applies to the
storage endpoint, `table_transport` returns None and the SDK's usual transport is used.
"""
from __future__ import annotations

import inspect
import select
import socket
import threading
import time
import urllib.request
import zlib
from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import urlsplit

import urllib3
from azure.core.configuration import ConnectionConfiguration
from azure.core.exceptions import (
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline import (
    Pipeline,
    PipelineContext,
    PipelineRequest,
    PipelineResponse,
)
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import HttpResponseImpl
from urllib3 import HTTPHeaderDict
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

# Azurite (node) closes keep-alive connections idle for 5 s; connections idle longer than this are
# not reused, so a request never races the server closing its connection.
MAX_IDLE_SECONDS = 3.0
_RETRYABLE_ON_STALE = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS"))
_NO_BODY_STATUSES = frozenset((204, 304))
_READ_SIZE = 65536


class _ConnectionLost(Exception):
    """The server closed a reused connection before answering: nothing of the answer was read."""


class _Connection:
    __slots__ = ("buffer", "idle_since", "reused", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.idle_since = 0.0
        self.reused = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self) -> None:
        chunk = self.sock.recv(_READ_SIZE)
        if not chunk:
            raise ConnectionResetError("the storage service closed the connection")
        self.buffer += chunk

    def read_line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 2]
                return line
            if len(self.buffer) > 65536:
                raise ValueError("an over-long line in the storage service's answer")
            self._fill()

    def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read_to_close(self) -> bytes:
        while True:
            try:
                self._fill()
            except ConnectionResetError:
                data = bytes(self.buffer)
                self.buffer.clear()
                return data


class _PlainHttpPool:
    """Keep-alive HTTP/1.1 connections to one plain-HTTP endpoint (Azurite), with a minimal parser.

    http.client (under requests and urllib3) parses every answer's headers with the email package;
    this reads the status line, the header lines, and a Content-Length or chunked body, nothing more.
    """

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.host_header = host if port == 80 else f"{host}:{port}"
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def _take(self) -> _Connection | None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._idle:
                    return None
                connection = self._idle.pop()
            stale = now - connection.idle_since > MAX_IDLE_SECONDS or connection.buffer
            if not stale:
                try:  # readable while idle means the server closed it (or sent junk)
                    poller = select.poll()  # poll, not select: any descriptor number
                    poller.register(connection.sock, select.POLLIN)
                    stale = bool(poller.poll(0))
                except (OSError, ValueError):
                    stale = True
            if not stale:
                connection.reused = True
                return connection
            connection.close()

    def _give_back(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(connection)
                return
        connection.close()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _connect(self, timeout: float | None) -> _Connection:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except TimeoutError as error:
            raise ServiceRequestTimeoutError(error, error=error) from error
        except OSError as error:
            raise ServiceRequestError(error, error=error) from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(sock)

    def request(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None,
                connect_timeout: float | None, read_timeout: float | None) -> tuple[int, str, HTTPHeaderDict, bytes]:
        head = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        has_length = False
        for name, value in headers.items():
            value = str(value)
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"invalid header {name!r}")
            lowered = name.lower()
            if lowered in ("host", "transfer-encoding", "connection"):
                continue
            if lowered == "content-length":
                has_length = True
            head.append(f"{name}: {value}")
        if not has_length and (body or method not in ("GET", "HEAD", "DELETE", "OPTIONS")):
            head.append(f"Content-Length: {len(body) if body else 0}")
        message = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        connection = self._take()
        if connection is not None:
            try:
                return self._exchange(connection, method, message, read_timeout)
            except _ConnectionLost as error:
                if method not in _RETRYABLE_ON_STALE:
                    raise ServiceResponseError(error.__cause__ or error, error=error) from error
        return self._exchange(self._connect(connect_timeout), method, message, read_timeout)

    def _exchange(self, connection: _Connection, method: str, message: bytes,
                  read_timeout: float | None) -> tuple[int, str, HTTPHeaderDict, bytes]:
        keep = complete = answered = False
        try:
            connection.sock.settimeout(read_timeout)
            try:
                connection.sock.sendall(message)
                while True:  # skip 1xx interim answers
                    status_line = connection.read_line()
                    answered = True
                    version, status, reason = _status_line(status_line)
                    lines = []
                    while line := connection.read_line():
                        lines.append(line)
                    headers = _header_lines(lines)
                    if status >= 200:
                        break
                keep = version == "HTTP/1.1" and "close" not in headers.get("Connection", "").lower()
                if method == "HEAD" or status in _NO_BODY_STATUSES:
                    data = b""
                elif "chunked" in headers.get("Transfer-Encoding", "").lower():
                    parts = []
                    while True:
                        size = int(connection.read_line().split(b";", 1)[0].strip(), 16)
                        if size == 0:
                            while connection.read_line():  # trailers
                                pass
                            break
                        parts.append(connection.read_exactly(size))
                        if connection.read_exactly(2) != b"\r\n":
                            raise ValueError("a malformed chunk in the storage service's answer")
                    data = b"".join(parts)
                elif "Content-Length" in headers:
                    data = connection.read_exactly(int(headers["Content-Length"]))
                else:
                    keep = False
                    data = connection.read_to_close()
            except TimeoutError as error:
                raise ServiceResponseTimeoutError(error, error=error) from error
            except (OSError, ValueError) as error:
                if connection.reused and not answered:
                    raise _ConnectionLost() from error
                raise ServiceResponseError(error, error=error) from error
            complete = True  # the whole answer was read: the connection may serve another request
            encoding = headers.get("Content-Encoding", "").lower()
            if encoding in ("gzip", "deflate"):
                try:
                    data = zlib.decompress(data, 47 if encoding == "gzip" else 15)
                except zlib.error as error:
                    raise ServiceResponseError(error, error=error) from error
            return status, reason, headers, data
        finally:
            if keep and complete and not connection.buffer:
                self._give_back(connection)
            else:
                connection.close()


class _PlainResponse:
    """What HttpResponseImpl.close() needs of the internal response once the body is read."""

    def __init__(self, status: int, reason: str, headers: HTTPHeaderDict) -> None:
        self.status, self.reason, self.headers = status, reason, headers

    def close(self) -> None:
        pass


# The host runs up to 64 function threads (PYTHON_THREADPOOL_THREAD_COUNT): a pool smaller than
# that closes and reopens connections under load (requests' default keeps 10).
DEFAULT_POOL_SIZE = 64


class _Response(HttpResponseImpl):
    """An azure-core response whose body was read in full by the transport."""

    def __init__(self, request: Any, internal: Any, body: bytes) -> None:
        headers = internal.headers  # urllib3's HTTPHeaderDict: case-insensitive, as azure-core expects
        super().__init__(
            request=request,
            internal_response=internal,
            status_code=internal.status,
            reason=internal.reason or "",
            content_type=headers.get("Content-Type"),
            headers=headers,
            stream_download_generator=_whole_body,
        )
        self._content = body

    def iter_bytes(self, **kwargs: Any):
        return _whole_body(response=self)

    iter_raw = iter_bytes

    def parts(self) -> list:
        """The answers of a batch (multipart/mixed), as azure-core's `parts()` gives them.

        azure-core parses them with the email package and runs the part policies on a new thread
        pool per batch; this splits the body on its boundaries directly. Anything unexpected goes
        to azure-core's parser.
        """
        info = getattr(self.request, "multipart_mixed_info", None)
        content_type = self.content_type or ""
        if info and content_type.startswith("multipart/mixed"):
            try:
                responses = _split_answers(self, self._content or b"", content_type, info[0])
            except (ValueError, IndexError, KeyError):
                responses = None
            if responses is not None:
                for response in responses:
                    context = PipelineContext(None)
                    pipeline_request = PipelineRequest(response.request, context)
                    pipeline_response = PipelineResponse(response.request, response, context=context)
                    for policy in info[1]:
                        policy.on_response(pipeline_request, pipeline_response)
                return responses
        return list(super().parts())


def _boundary(content_type: str) -> bytes:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"').encode("latin-1")
    raise ValueError("multipart answer without a boundary")


def _split_answers(parent: _Response, body: bytes, content_type: str, requests: Any) -> list:
    """Part answers of one multipart/mixed level, changesets flattened, matched to `requests` by index."""
    delimiter = b"--" + _boundary(content_type)
    segments = body.split(delimiter)
    if len(segments) < 3 or not segments[-1].startswith(b"--"):
        raise ValueError("not a complete multipart body")
    answers = []
    for index, segment in enumerate(segments[1:-1]):
        if not segment.startswith(b"\r\n") or not segment.endswith(b"\r\n"):
            raise ValueError("unexpected multipart framing")
        head, separator, payload = segment[2:-2].partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a part without a header block")
        part_headers = _header_lines(head.split(b"\r\n"))
        part_type = part_headers.get("Content-Type", "")
        if part_type == "application/http":
            request = requests[index] if index < len(requests) else parent.request
            answers.append(_http_answer(request, payload))
        elif part_type.startswith("multipart/mixed") and getattr(requests[index], "multipart_mixed_info", None):
            answers.extend(_split_answers(parent, payload + b"\r\n", part_type,
                                          requests[index].multipart_mixed_info[0]))
        else:
            raise ValueError(f"unexpected part type {part_type!r}")
    return answers


def _status_line(line: bytes) -> tuple[str, int, str]:
    """(version, status, reason) of `HTTP/1.1 200 OK`; ValueError for anything else."""
    version, _, rest = line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError("not an HTTP answer")
    code, _, reason = rest.partition(" ")
    return version, int(code), reason


def _header_lines(lines: list) -> HTTPHeaderDict:
    headers = HTTPHeaderDict()
    for line in lines:
        if not line:
            continue
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise ValueError("a malformed header line")
        headers.add(name.strip(), value.strip())
    return headers


def _http_answer(request: Any, payload: bytes) -> _Response:
    head, _, body = payload.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    _, status, reason = _status_line(lines[0])
    return _Response(request, _PlainResponse(status, reason, _header_lines(lines[1:])), body)


def _serialized_request(request: Any) -> bytes:
    """A sub-request in application/http form, byte for byte what azure-core's serializer writes."""
    body = request.content
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif body is not None and not isinstance(body, (bytes, bytearray)):
        raise ValueError("a streamed sub-request body")
    lines = [f"{request.method} {request.url} HTTP/1.1"]
    for name, value in request.headers.items():
        if name.lower() in ("host", "accept-encoding"):
            continue
        value = str(value)
        if "\r" in value or "\n" in value:
            raise ValueError("a header value with a line break")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + bytes(body or b"")


def _multipart_body(request: Any, content_index: int) -> tuple[bytes, int]:
    """(body, next content index) of a multipart/mixed request, laid out as azure-core lays it out."""
    requests, _, boundary, _ = request.multipart_mixed_info
    if not boundary:
        raise ValueError("a multipart request without a boundary")
    pieces = []
    for sub_request in requests:
        if getattr(sub_request, "multipart_mixed_info", None):
            nested, content_index = _multipart_body(sub_request, content_index)
            nested_boundary = sub_request.multipart_mixed_info[2]
            pieces.append(f"Content-Type: multipart/mixed; boundary={nested_boundary}\r\n\r\n".encode("latin-1")
                          + nested)
        else:
            pieces.append(b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                          + f"Content-ID: {content_index}\r\n\r\n".encode("latin-1")
                          + _serialized_request(sub_request))
            content_index += 1
    delimiter = b"--" + boundary.encode("latin-1")
    body = delimiter + b"\r\n" + (b"\r\n" + delimiter + b"\r\n").join(pieces) + b"\r\n" + delimiter + b"--\r\n"
    return body, content_index


def _sync_part_policies(request: Any) -> bool:
    """Whether every part policy of a batch, nested changesets' included, has a synchronous on_request."""
    requests, policies, _, _ = request.multipart_mixed_info
    for policy in policies:
        on_request = getattr(policy, "on_request", None)
        if on_request is None or inspect.iscoroutinefunction(on_request):
            return False
    return all(_sync_part_policies(sub) for sub in requests if getattr(sub, "multipart_mixed_info", None))


def _run_part_policies(request: Any) -> None:
    requests, policies, _, options = request.multipart_mixed_info
    for sub_request in requests:
        if getattr(sub_request, "multipart_mixed_info", None):
            _run_part_policies(sub_request)
        pipeline_request = PipelineRequest(sub_request, PipelineContext(None, **options))
        for policy in policies:
            policy.on_request(pipeline_request)


class LeanPipeline(Pipeline):
    """azure-core's Pipeline with batch (multipart/mixed) bodies written directly.

    azure-core builds a batch body with the email package (a Message per operation, then a
    generator that re-reads every line) and runs the part policies on a new thread pool per batch.
    This writes the same bytes (tests/storage/test_table_transport.py compares them) with string
    joins; a request it does not expect goes to azure-core's own code.
    """

    def _prepare_multipart(self, request: Any) -> None:  # azure-core's hook, called by run()
        info = getattr(request, "multipart_mixed_info", None)
        if not info:
            return
        if not _sync_part_policies(request):
            # azure-core's code, which refuses a policy a sync pipeline cannot run, before any has run.
            super()._prepare_multipart(request)
            return
        _run_part_policies(request)
        try:
            body, _ = _multipart_body(request, 0)
        except (ValueError, AttributeError, TypeError):
            # azure-core's layout, as super() lays it out once its policies have run (they have: once).
            request.prepare_multipart_body()
            return
        request.set_bytes_body(body)
        request.headers["Content-Type"] = "multipart/mixed; boundary=" + info[2]


def _whole_body(pipeline: Any = None, response: Any = None, **kwargs: Any):
    content = getattr(response, "_content", None)
    if content:
        yield content


class TableTransport(HttpTransport):
    """Sends azure-core requests: plain HTTP on `_PlainHttpPool`s, HTTPS on urllib3 pools.

    Thread-safe; one instance per process is enough.

    `connection_timeout` and `read_timeout` (seconds) are the defaults; a request may pass its own.
    `connection_verify` is True (system CA store), False, or a CA bundle path, as for the SDK's
    transports.
    """

    def __init__(self, *, pool_size: int = DEFAULT_POOL_SIZE, **kwargs: Any) -> None:
        self.connection_config = ConnectionConfiguration(**kwargs)
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self._manager: urllib3.PoolManager | None = None
        self._plain: dict[tuple[str, int], _PlainHttpPool] = {}

    def open(self) -> None:
        if self._manager is None:
            with self._lock:
                if self._manager is None:
                    verify = self.connection_config.verify
                    tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED" if verify else "CERT_NONE"}
                    if isinstance(verify, str):
                        tls["ca_certs"] = verify
                    cert = self.connection_config.cert
                    if cert:
                        tls["cert_file"], tls["key_file"] = (cert, None) if isinstance(cert, str) else cert
                    self._manager = urllib3.PoolManager(
                        num_pools=8, maxsize=self._pool_size, block=False, retries=False, **tls
                    )

    def close(self) -> None:
        with self._lock:
            manager, self._manager = self._manager, None
            plain, self._plain = self._plain, {}
        if manager is not None:
            manager.clear()
        for pool in plain.values():
            pool.clear()

    def _plain_pool(self, host: str, port: int) -> _PlainHttpPool:
        pool = self._plain.get((host, port))
        if pool is None:
            with self._lock:
                pool = self._plain.setdefault((host, port), _PlainHttpPool(host, port, self._pool_size))
        return pool

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *args: object) -> None:
        # Table clients built on one TableStore share this transport: a client leaving its `with`
        # block must not close it for the others (TableStore.close closes it).
        pass

    def send(self, request: Any, **kwargs: Any) -> _Response:
        self.open()
        assert self._manager is not None
        connect_timeout = kwargs.pop("connection_timeout", self.connection_config.timeout)
        read_timeout = kwargs.pop("read_timeout", self.connection_config.read_timeout)
        if getattr(request, "files", None):
            raise ValueError("TableTransport does not send multipart form files")
        body = request.content if hasattr(request, "content") else request.data
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None and not isinstance(body, (bytes, bytearray)):
            body = b"".join(chunk.encode("utf-8") if isinstance(chunk, str) else chunk for chunk in body)
        url = request.url
        if url.startswith("http://"):  # Azurite: the plain pool
            parts = urlsplit(url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            status, reason, headers, data = self._plain_pool(parts.hostname or "", parts.port or 80).request(
                request.method, target, request.headers, body, connect_timeout, read_timeout
            )
            return _Response(request, _PlainResponse(status, reason, headers), data)
        try:
            response = self._manager.urlopen(
                request.method,
                url,
                body=body,
                headers=request.headers,
                timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=True,
            )
            try:
                data = response.read()
            finally:
                response.release_conn()
        except ConnectTimeoutError as error:  # NewConnectionError is one: nothing was sent
            kind = ServiceRequestError if isinstance(error, NewConnectionError) else ServiceRequestTimeoutError
            raise kind(error, error=error) from error
        except ReadTimeoutError as error:
            raise ServiceResponseTimeoutError(error, error=error) from error
        except SSLError as error:
            raise ServiceRequestError(error, error=error) from error
        except (ProtocolError, HTTPError, OSError) as error:
            raise ServiceResponseError(error, error=error) from error
        return _Response(request, response, data)


def _proxied(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    proxies = urllib.request.getproxies()
    return bool(proxies.get(parts.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(
        parts.hostname or ""
    )


def table_transport(endpoint: str, **kwargs: Any) -> HttpTransport | None:
    """The transport for a storage endpoint: TableTransport, or None (the SDK's default) behind a proxy."""
    return None if _proxied(endpoint) else TableTransport(**kwargs)


def lean_policies(client_policies: list) -> list:
    """The SDK's policy list without the ones that cost time and do nothing for the app's storage calls."""
    from azure.core.pipeline.policies import (
        CustomHookPolicy,
        DistributedTracingPolicy,
        HttpLoggingPolicy,
        NetworkTraceLoggingPolicy,
        ProxyPolicy,
        RedirectPolicy,
    )

    dropped = (ProxyPolicy, RedirectPolicy, CustomHookPolicy, NetworkTraceLoggingPolicy,
               DistributedTracingPolicy, HttpLoggingPolicy)
    return [policy for policy in client_policies if not isinstance(policy, dropped)]
