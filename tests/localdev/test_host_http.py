"""The host over real sockets: routing, auth, request/response conversion, sync and async functions."""

import asyncio
import http.client
import json
import logging
import ssl
import time
import uuid

import aiohttp
import azure.functions as func
import pytest
import pytest_asyncio
from yarl import URL

from localdev.certs import ensure_dev_certificate
from localdev.host import FunctionHost
from localdev.settings import HostConfig, load_local_settings_json, read_route_prefix

from .localdev_sample_app import create_app

MASTER_KEY = "master-key-for-tests"
FUNCTION_KEY = "function-key-for-tests"


class Served:
    def __init__(self, host, certificate):
        self.host = host
        self.certificate = certificate
        self.http_url = f"http://127.0.0.1:{host.http_port}"
        self.https_url = f"https://127.0.0.1:{host.https_port}"

    def url(self, raw_path):
        # encoded=True: send the path exactly as written (no re-quoting by the client).
        return URL(self.http_url + raw_path, encoded=True)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(tmp_path_factory):
    certificate = ensure_dev_certificate(tmp_path_factory.mktemp("certs"))
    config = HostConfig(master_key=MASTER_KEY, function_keys=frozenset({FUNCTION_KEY}))
    host = FunctionHost(create_app(), config)
    await host.start(https_port=0, http_port=0, certificate=certificate)
    yield Served(host, certificate)
    await host.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def client():
    async with aiohttp.ClientSession() as session:
        yield session


async def fetch_json(client, method, url, **kwargs):
    async with client.request(method, url, **kwargs) as response:
        return response.status, await response.json()


async def test_request_carries_raw_url_route_values_query_and_body(served, client):
    raw = "/api/identities/8%3Aacs%3Aabc%2Fdef/:issueAccessToken?api-version=2023-10-01&x=%2B1&x=2"
    status, seen = await fetch_json(client, "POST", served.url(raw), data=b"\x00\x01 body")
    assert status == 200
    assert seen["function"] == "issue_token"
    assert seen["url"] == served.http_url + raw
    assert seen["route_params"] == {"id": "8:acs:abc/def"}
    assert seen["params"] == {"api-version": "2023-10-01", "x": "+1,2"}
    assert seen["body"] == "\x00\x01 body"


def _get_with_raw_headers(port, path, headers):
    # http.client sends repeated headers as given (aiohttp's client would merge them).
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.putrequest("GET", path)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


async def test_headers_are_case_insensitive_and_repeated_ones_joined(served):
    headers = [("X-MS-Date", "Tue, 01 Jan 2030 00:00:00 GMT"), ("X-Multi", "a"), ("x-multi", "b")]
    status, seen = await asyncio.to_thread(_get_with_raw_headers, served.host.http_port,
                                           "/api/echo/h", headers)
    assert status == 200
    assert seen["headers"]["x-ms-date"] == "Tue, 01 Jan 2030 00:00:00 GMT"
    assert seen["headers"]["x-multi"] == "a, b"
    request = func.HttpRequest("GET", "http://x/", headers=seen["headers"], body=b"")
    assert request.headers.get("X-Ms-Date") == seen["headers"]["x-ms-date"]


@pytest.mark.parametrize("method, raw_path, function, route_params", [
    ("GET", "/api/rooms/r1", "get_room", {"roomId": "r1"}),
    ("PATCH", "/api/rooms/r1", "patch_room", {"roomId": "r1"}),
    ("POST", "/api/calling/callConnections:connect", "connect_call", {}),
    ("POST", "/api/calling/callConnections/c%3A1:terminate", "terminate_call", {"id": "c:1"}),
    ("GET", "/api/calling/callConnections/c1", "get_call", {"id": "c1"}),
    ("GET", "/api/items/5", "item_by_id", {"id": "5"}),
    ("GET", "/api/items/new", "new_item", {}),
])
async def test_routes_reach_the_right_function(served, client, method, raw_path, function,
                                               route_params):
    status, seen = await fetch_json(client, method, served.url(raw_path))
    assert status == 200
    assert seen["function"] == function
    assert seen["route_params"] == route_params


async def test_wrong_method_is_405_with_allow(served, client):
    async with client.delete(served.url("/api/rooms/r1")) as response:
        assert response.status == 405
        assert set(response.headers["Allow"].split(", ")) == {"GET", "PATCH"}
        assert (await response.json())["error"]["code"] == "MethodNotAllowed"


async def test_unknown_path_is_404_json(served, client):
    for raw in ("/api/nowhere", "/echo/without-prefix", "/api/items/abc"):
        status, body = await fetch_json(client, "GET", served.url(raw))
        assert status == 404 and body["error"]["code"] == "NotFound", raw


@pytest.mark.parametrize("path, headers, expected", [
    ("/api/keyed", {}, 401),
    ("/api/keyed?code=wrong", {}, 401),
    ("/api/keyed?code=" + FUNCTION_KEY, {}, 200),
    ("/api/keyed", {"x-functions-key": FUNCTION_KEY}, 200),
    ("/api/keyed", {"X-Functions-Key": MASTER_KEY}, 200),
    ("/api/admin-only?code=" + FUNCTION_KEY, {}, 401),
    ("/api/admin-only", {"x-functions-key": MASTER_KEY}, 200),
    ("/api/text", {}, 200),
])
async def test_auth_levels(served, client, path, headers, expected):
    async with client.get(served.url(path), headers=headers) as response:
        assert response.status == expected
        if expected == 401:
            assert (await response.json())["error"]["code"] == "Unauthorized"


async def test_204_has_no_body_and_no_content_type(served, client):
    async with client.delete(served.url("/api/no-content")) as response:
        assert response.status == 204
        assert "Content-Type" not in response.headers
        assert response.headers["x-deleted"] == "yes"
        assert await response.read() == b""


async def test_status_headers_and_repeated_headers(served, client):
    async with client.post(served.url("/api/created")) as response:
        assert response.status == 201
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Location"] == "/created/1"
        assert response.headers["x-ms-request-id"] == "r-1"
        assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
        assert await response.read() == b'{"id": 1}'


async def test_mimetype_and_charset(served, client):
    async with client.get(served.url("/api/teapot")) as response:
        assert response.status == 418
        assert response.headers["Content-Type"] == "text/html; charset=latin-1"
    async with client.get(served.url("/api/text")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await response.text() == "plain words"


async def test_output_binding_parameter(served, client):
    async with client.get(served.url("/api/out-binding")) as response:
        assert response.status == 202
        assert await response.text() == "via out"


async def test_sync_functions_run_in_the_pool_and_async_ones_on_the_loop(served, client):
    _, sync_seen = await fetch_json(client, "GET", served.url("/api/thread"))
    _, async_seen = await fetch_json(client, "GET", served.url("/api/async-thread"))
    assert sync_seen["thread"].startswith("localdev-function")
    assert async_seen["thread"] == "MainThread"


@pytest.mark.parametrize("path", ["/api/sleep-sync?seconds=0.4", "/api/sleep-async?seconds=0.4"])
async def test_requests_run_concurrently(served, client, path):
    started = time.perf_counter()
    statuses = await asyncio.gather(*[
        _status(client, served.url(path)) for _ in range(8)])
    assert statuses == [200] * 8
    assert time.perf_counter() - started < 1.6  # 8 x 0.4 s would be 3.2 s one by one


async def _status(client, url):
    async with client.get(url) as response:
        await response.read()
        return response.status


@pytest.mark.parametrize("path, message", [("/api/boom", "sync failure"),
                                           ("/api/async-boom", "async failure")])
async def test_unhandled_exception_is_500_json_and_logged(served, client, caplog, path, message):
    status, body = await fetch_json(client, "GET", served.url(path))
    assert status == 500
    assert body["error"]["code"] == "InternalServerError"
    assert body["error"]["message"].startswith("Exception while executing function")
    assert f"RuntimeError: {message}" in caplog.text
    assert "Traceback" in caplog.text


async def test_context_parameter_is_injected(served, client):
    _, seen = await fetch_json(client, "GET", served.url("/api/context"))
    assert seen["function_name"] == "with_context"
    uuid.UUID(seen["invocation_id"])


async def test_https_with_an_ssl_context_from_the_ca_file(served):
    context = ssl.create_default_context(cafile=str(served.certificate.ca_cert))
    async with aiohttp.ClientSession() as session:
        async with session.get(served.https_url + "/api/echo/tls", ssl=context) as response:
            seen = await response.json()
    assert seen["url"] == served.https_url + "/api/echo/tls"


async def test_https_refuses_clients_that_do_not_trust_the_ca(served):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(served.https_url + "/api/text")


def _two_requests_on_one_connection(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/api/text")
        first = connection.getresponse()
        first.read()
        sock = connection.sock
        connection.request("GET", "/api/text")
        second = connection.getresponse()
        second.read()
        return first.status, second.status, connection.sock is sock
    finally:
        connection.close()


async def test_http11_keep_alive(served):
    first, second, same_socket = await asyncio.to_thread(_two_requests_on_one_connection,
                                                         served.host.http_port)
    assert (first, second, same_socket) == (200, 200, True)


async def test_overhead_stays_small(served, client):
    """A loose guard (CI machines vary); localdev/README.md has measured numbers."""
    url = served.url("/api/async-thread")
    await _status(client, url)
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        await _status(client, url)
        timings.append(time.perf_counter() - started)
    timings.sort()
    assert timings[len(timings) // 2] < 0.005


def test_get_functions_is_called_once_and_unknown_triggers_are_skipped(caplog):
    caplog.set_level(logging.INFO, logger="localdev")
    app = create_app()
    calls = []
    original = app.get_functions

    def counting():
        calls.append(1)
        return original()

    app.get_functions = counting
    host = FunctionHost(app, HostConfig())
    assert calls == [1]
    assert "on_queue_message" in host.functions
    assert set(host.adapters) == {"httpTrigger"}
    assert "ignoring function on_queue_message" in caplog.text
    host._executor.shutdown()


async def test_empty_route_prefix(client):
    host = FunctionHost(create_app(), HostConfig(route_prefix=""))
    await host.start(https_port=None, http_port=0)
    try:
        base = f"http://127.0.0.1:{host.http_port}"
        status, seen = await fetch_json(client, "GET", URL(base + "/rooms/x%3Ay", encoded=True))
        assert status == 200 and seen["route_params"] == {"roomId": "x:y"}
        async with client.get(base + "/api/rooms/x") as response:
            assert response.status == 404
    finally:
        await host.stop()


def test_route_prefix_comes_from_host_json(tmp_path):
    assert read_route_prefix(tmp_path / "host.json") == "api"
    (tmp_path / "host.json").write_text(json.dumps(
        {"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}))
    assert HostConfig.load(tmp_path, environ={}).route_prefix == ""
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"http": {"routePrefix": "/v1/"}}}))
    assert read_route_prefix(tmp_path / "host.json") == "v1"


def test_keys_and_pool_size_come_from_settings(tmp_path):
    config = HostConfig.load(tmp_path, environ={
        "LOCALDEV_MASTER_KEY": "m", "LOCALDEV_FUNCTION_KEYS": "a, b",
        "PYTHON_THREADPOOL_THREAD_COUNT": "8"})
    assert (config.master_key, config.function_keys, config.thread_pool_size) == (
        "m", frozenset({"a", "b"}), 8)


def test_local_settings_json_does_not_override_the_environment(tmp_path):
    (tmp_path / "local.settings.json").write_text(json.dumps(
        {"IsEncrypted": False, "Values": {"A": "from-file", "B": "from-file"}}))
    environ = {"A": "from-env"}
    assert load_local_settings_json(tmp_path, environ) == ["B"]
    assert environ == {"A": "from-env", "B": "from-file"}
    assert load_local_settings_json(tmp_path / "missing", environ) == []
