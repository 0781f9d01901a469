"""`python -m localdev serve|run` and localdev.testing, as separate processes over TLS."""

import json
import os
import queue
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from azure.data.tables import TableServiceClient

from localdev.testing import local_service, serve_app
from tests.conftest import dev_certificate

SAMPLE_DIR = Path(__file__).resolve().parent
SAMPLE_APP = "localdev_sample_app:app"
REPO_ROOT = SAMPLE_DIR.parents[1]


@pytest.fixture
def sample_app_dir(tmp_path):
    """The sample app with host.json (no route prefix) and local.settings.json."""
    shutil.copy(SAMPLE_DIR / "localdev_sample_app.py", tmp_path)
    (tmp_path / "host.json").write_text(json.dumps(
        {"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}))
    (tmp_path / "local.settings.json").write_text(json.dumps(
        {"IsEncrypted": False, "Values": {"FROM_FILE": "file", "OVERRIDDEN": "file"}}))
    return tmp_path


def test_serve_over_tls_with_requests_ca_bundle(sample_app_dir, monkeypatch):
    with serve_app(SAMPLE_APP, app_dir=sample_app_dir, env={"OVERRIDDEN": "env"},
                   http=True) as host:
        ca_file = str(host.cert_dir / "localdev-ca.pem")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(host.base_url + "/text", timeout=5)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
        for base in (host.base_url, host.base_url.replace("127.0.0.1", "localhost")):
            response = requests.get(base + "/text", timeout=5)
            assert (response.status_code, response.text) == (200, "plain words")
        # local.settings.json fills gaps in the environment but never overrides it.
        assert requests.get(host.base_url + "/settings/FROM_FILE", timeout=5).text == "file"
        assert requests.get(host.base_url + "/settings/OVERRIDDEN", timeout=5).text == "env"
        assert requests.get(host.http_base_url + "/text", timeout=5).text == "plain words"
    assert "localdev: stopped" in host.output()  # SIGTERM shut it down cleanly


def _get_in_background(url: str) -> queue.Queue:
    """GET `url` on a thread; the queue receives (status, text) or the exception."""
    outcome: queue.Queue = queue.Queue()

    def get() -> None:
        try:
            response = requests.get(url, timeout=60)
            outcome.put((response.status_code, response.text))
        except requests.RequestException as error:
            outcome.put(error)

    threading.Thread(target=get, daemon=True).start()
    return outcome


def _wait_for_line(host, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in host.output():
        assert time.monotonic() < deadline, f"the host never printed {text!r}"
        time.sleep(0.02)


def test_stop_lets_running_calls_finish_within_the_grace_period(sample_app_dir):
    with serve_app(SAMPLE_APP, app_dir=sample_app_dir, http=True, args=["--grace-seconds", "10"]) as host:
        reply = _get_in_background(host.http_base_url + "/sleep-sync?seconds=1.5")
        _wait_for_line(host, "sleep-sync: sleeping")
        host.process.send_signal(signal.SIGTERM)
        assert host.process.wait(timeout=15) == 0
        assert reply.get(timeout=5) == (200, "slept")
    assert "not waiting" not in host.output()


def test_stop_leaves_a_hung_call_behind_after_the_grace_period(sample_app_dir):
    with serve_app(SAMPLE_APP, app_dir=sample_app_dir, http=True, args=["--grace-seconds", "1"]) as host:
        reply = _get_in_background(host.http_base_url + "/sleep-sync?seconds=600")
        _wait_for_line(host, "sleep-sync: sleeping")
        host.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        # Without the grace period the pool's thread would hold the process for ten minutes.
        assert host.process.wait(timeout=20) == 0
        assert time.monotonic() - started < 15
        assert isinstance(reply.get(timeout=5), requests.RequestException)
    assert "1 function call(s) still running after 1 s; not waiting for them" in host.output()
    assert "localdev: stopped" in host.output()


AIOHTTP_CLIENT = """
import asyncio, sys, aiohttp
async def main():
    async with aiohttp.ClientSession() as session:
        async with session.get(sys.argv[1]) as response:
            print(response.status, await response.text())
asyncio.run(main())
"""


def test_aiohttp_trusts_the_ca_through_ssl_cert_file(sample_app_dir):
    with serve_app(SAMPLE_APP, app_dir=sample_app_dir) as host:
        ca_file = str(host.cert_dir / "localdev-ca.pem")
        # aiohttp builds its default SSL context at import, so the variable
        # has to be in the environment before the client process starts.
        trusted = subprocess.run(
            [sys.executable, "-c", AIOHTTP_CLIENT, host.base_url + "/text"],
            env={**os.environ, "SSL_CERT_FILE": ca_file}, capture_output=True, text=True, timeout=30)
        assert trusted.stdout.strip() == "200 plain words", trusted.stderr
        untrusted = subprocess.run(
            [sys.executable, "-c", AIOHTTP_CLIENT, host.base_url + "/text"],
            env={k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"},
            capture_output=True, text=True, timeout=30)
        assert untrusted.returncode != 0 and "certificate verify failed" in untrusted.stderr


def test_local_service_runs_two_hosts_on_one_azurite():
    with local_service(SAMPLE_APP, app_dir=SAMPLE_DIR, hosts=2, env={"EXTRA": "yes"},
                       certificate=dev_certificate()) as service:
        assert service.connection_string == f"endpoint={service.base_url}/;accesskey={service.access_key}"
        ports = {host.port for host in service.hosts}
        assert len(ports) == 2
        for host in service.hosts:
            url = host.base_url + "/api/settings/ANTEROOM_ACCESS_KEY"
            assert requests.get(url, verify=service.ca_file, timeout=5).text == service.access_key
            url = host.base_url + "/api/settings/ANTEROOM_STORAGE_CONNECTION_STRING"
            assert requests.get(url, verify=service.ca_file, timeout=5).text == \
                service.storage_connection_string
        assert requests.get(service.base_url + "/api/settings/EXTRA", verify=service.ca_file,
                            timeout=5).text == "yes"
        tables = TableServiceClient.from_connection_string(service.storage_connection_string)
        tables.create_table("twohosts")
        before = service.base_url
        service.restart_host(0)
        assert service.base_url == before
        assert requests.get(before + "/api/text", verify=service.ca_file, timeout=5).status_code == 200
        azurite_pid = service.azurite.process.pid
        host_pids = [host.process.pid for host in service.hosts]
    for pid in [azurite_pid, *host_pids]:
        assert not _running(pid)


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _children(pid):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().split(")")[-1].split()
            except OSError:
                continue
            if fields[1] == str(pid):
                found.append(int(entry.name))
    return found


def _start_run(state_dir, timeout=60.0, app=("--app", SAMPLE_APP, "--app-dir", str(SAMPLE_DIR)), extra=()):
    process = subprocess.Popen(
        [sys.executable, "-m", "localdev", "run", "--port", "0", "--state-dir", str(state_dir), *app, *extra],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    announced = {}
    deadline = time.monotonic() + timeout
    while "listening" not in announced:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            pytest.fail(f"`localdev run` did not become ready: {announced}")
        line = line.strip().removeprefix("localdev: ")
        name, _, value = line.partition(": " if ": " in line else " ")
        announced[name] = value
    return process, announced


def _stop_run(process):
    children = _children(process.pid)
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert process.wait(timeout=30) == 0
    assert children and not any(_running(pid) for pid in children)


def test_run_generates_settings_once_and_stops_everything_on_ctrl_c(tmp_path):
    process, first = _start_run(tmp_path / "state")
    try:
        connection_string = first["connection string"]
        endpoint, access_key = [part.split("=", 1)[1] for part in connection_string.split(";")[:2]]
        assert endpoint.startswith("https://127.0.0.1:") and endpoint.endswith("/")
        ca_file = first["CA certificate"]
        assert Path(ca_file).is_absolute()
        response = requests.get(endpoint + "api/settings/ANTEROOM_ACCESS_KEY", verify=ca_file,
                                timeout=5)
        assert response.text == access_key
    finally:
        _stop_run(process)
    settings_file = tmp_path / "state" / "settings.json"
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
    settings = json.loads(settings_file.read_text())
    assert set(settings) == {"ANTEROOM_STORAGE_CONNECTION_STRING", "ANTEROOM_ACCESS_KEY",
                             "ANTEROOM_SECONDARY_ACCESS_KEY", "ANTEROOM_RESOURCE_ID",
                             "ANTEROOM_TOKEN_SIGNING_KEY", "ANTEROOM_CALLBACK_SIGNING_KEY", "ANTEROOM_EVENTGRID_ENDPOINT",
                             "ANTEROOM_EVENTGRID_KEY", "ANTEROOM_PSTN_GATEWAY_URL",
                             "ANTEROOM_PSTN_CALLER_NUMBERS"}

    process, second = _start_run(tmp_path / "state")
    try:
        assert second["connection string"].split(";")[1] == f"accesskey={access_key}"
        assert second["storage"] == first["storage"]  # same Azurite port, same data folder
        assert json.loads(settings_file.read_text()) == settings
    finally:
        _stop_run(process)
