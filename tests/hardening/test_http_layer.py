"""The HTTP layer under hostile or broken clients: compressed floods, malformed requests, half-sent
requests and forged client addresses get ACS-shaped refusals and cost what their bytes cost."""
from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from localdev.certs import ensure_dev_certificate
from shared.logs.operations import read_operation_records
from tests.conftest import ROOT, TEST_CERT_DIR
from tests.support.answers import ANSWERS
from tests.support.hmac_client import HmacClient
from tests.support.refusals import assert_acs_error

from .conftest import LoggedHost

pytestmark = pytest.mark.stack
ROOMS = "api-version=2025-03-13"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def http(hardened):
    return HmacClient(hardened)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_flood_of_compressed_bodies_costs_what_its_bytes_cost(hardened, http):
    """Eight ~92 KB gzip bodies, each inflating to 95 MB: refused as sent, never inflated."""
    bomb = gzip.compress(b'{"x": "' + b" " * 95_000_000 + b'"}', compresslevel=9)
    assert len(bomb) < 100_000
    pid = hardened.host.process.pid
    assert http.send("GET", f"/rooms?{ROOMS}").status_code == 200  # warm: the app is loaded
    baseline, peak, flooding = rss_bytes(pid), [0], threading.Event()

    def watch() -> None:
        while flooding.is_set():
            peak[0] = max(peak[0], rss_bytes(pid))
            time.sleep(0.01)

    answers: list[requests.Response] = []

    def post() -> None:
        answers.append(requests.post(
            f"{hardened.base_url}/rooms?{ROOMS}", data=bomb, verify=hardened.ca_file, timeout=60,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}))

    flooding.set()
    watcher = threading.Thread(target=watch)
    watcher.start()
    senders = [threading.Thread(target=post) for _ in range(8)]
    for sender in senders:
        sender.start()
    normal = http.send("GET", f"/rooms?{ROOMS}")  # served meanwhile
    for sender in senders:
        sender.join(120)
    flooding.clear()
    watcher.join()
    assert normal.status_code == 200
    assert len(answers) == 8
    for answer in answers:
        assert_acs_error(answer, 415, "UnsupportedMediaType")
    # Before, the host inflated each body to 95 MB on its event loop: 864 MiB more for this flood.
    assert peak[0] - baseline < 64 * MiB, f"the host grew by {(peak[0] - baseline) / MiB:.0f} MiB"


def test_a_signed_compressed_body_is_refused_and_changes_nothing(http, hardened_services):
    body = gzip.compress(json.dumps({"pstnDialOutEnabled": True}).encode())
    before = sum(1 for _ in hardened_services.rooms.list_active(None, 1000).items)
    answer = http.send("POST", f"/rooms?{ROOMS}", raw=body, headers={"Content-Encoding": "gzip"})
    assert_acs_error(answer, 415, "UnsupportedMediaType")
    assert sum(1 for _ in hardened_services.rooms.list_active(None, 1000).items) == before


def tls_connection(port: int, ca_file: str, timeout: float = 10) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=ca_file)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def read_answer(connection: ssl.SSLSocket) -> bytes:
    received = b""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            return received
        received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        if length is not None and len(body) >= length:
            return received


@pytest.mark.parametrize("request_bytes", [
    b"GET /rooms?api-version=2025-03-13 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Token eyJSECRETSECRET\r\n\r\n",
    b"GET /rooms/\x01eyJSECRETSECRET HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /rooms HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"eyJSECRETSECRET" * 1000 + b"\r\n\r\n",
], ids=["header-without-colon", "control-character-in-target", "header-too-long"])
def test_malformed_requests_get_an_acs_error_that_echoes_nothing(hardened, request_bytes):
    with tls_connection(hardened.host.port, hardened.ca_file) as connection:
        connection.sendall(request_bytes)
        answer = read_answer(connection)
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    assert status in (400, 431), head
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] in ("BadRequest", "RequestHeaderFieldsTooLarge") and error["message"]
    assert b"SECRET" not in answer


def test_a_client_leaving_mid_body_leaves_one_log_line(hardened):
    time.sleep(0.5)  # what earlier tests made the host log is in
    before = len(hardened.host.lines)
    with tls_connection(hardened.host.port, hardened.ca_file) as connection:
        connection.sendall(b"POST /rooms?api-version=2025-03-13 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"x\": \"")
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while not any("before sending the whole body" in line for line in list(hardened.host.lines)[before:]):
        assert time.monotonic() < deadline, "the host did not note the abandoned request"
        time.sleep(0.1)
    time.sleep(0.5)  # anything else it would log about it
    logged = list(hardened.host.lines)[before:]
    assert not any("Traceback" in line or " ERROR " in line for line in logged), "\n".join(logged)
    assert sum("before sending the whole body" in line for line in logged) == 1


@pytest.fixture(scope="module")
def impatient_host(hardened):
    """A second host on the hardened stack's storage, giving request headers two seconds."""
    certificate = ensure_dev_certificate(TEST_CERT_DIR)
    host = LoggedHost("function_app:app", Path(ROOT), hardened.settings, certificate.ca_cert.parent,
                      extra_args=("--header-timeout", "2"))
    host.start()
    ANSWERS.serve(host.base_url, str(certificate.ca_cert))
    yield host
    host.stop()


@pytest.mark.parametrize("trickle", [False, True], ids=["silent", "slowloris"])
def test_connections_that_never_finish_their_headers_are_closed(hardened, impatient_host, trickle):
    started = time.monotonic()
    with tls_connection(impatient_host.port, hardened.ca_file, timeout=15) as connection:
        connection.sendall(b"GET /rooms?api-version=2025-03-13 HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = False
        while time.monotonic() - started < 12:
            if trickle:  # a header byte now and then never completes the headers
                try:
                    connection.sendall(b"X")
                except OSError:
                    closed = True
                    break
            connection.settimeout(0.5)
            try:
                if connection.recv(1024) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
    assert closed, "the connection was still open after 12 s"
    assert time.monotonic() - started < 8
    # A request sent promptly is served as usual.
    assert requests.get(f"{impatient_host.base_url}/rooms?{ROOMS}", verify=hardened.ca_file,
                        timeout=30).status_code == 401


def test_the_logged_caller_address_is_the_one_the_platform_saw(hardened, hardened_services):
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    forged = requests.get(f"{hardened.base_url}/rooms/99999999999999994?{ROOMS}", verify=hardened.ca_file,
                          headers={"X-Forwarded-For": "198.51.100.7"}, timeout=30)
    plain = requests.get(f"{hardened.base_url}/rooms/99999999999999993?{ROOMS}", verify=hardened.ca_file,
                         timeout=30)
    assert forged.status_code == plain.status_code == 401
    table = hardened_services.tables.table(hardened_services.settings.table_name("RoomsOperations"))
    deadline = time.monotonic() + 15
    while True:
        logged = {r["RoomId"]: r.get("CallerIpAddress") for r in read_operation_records(table, since=since)
                  if r.get("RoomId") in ("99999999999999994", "99999999999999993")}
        if len(logged) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert logged == {"99999999999999994": "127.0.0.1", "99999999999999993": "127.0.0.1"}
