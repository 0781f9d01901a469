"""Test helpers: Azurite plus one or more `python -m localdev serve` hosts, started and stopped around a test."""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from .azurite import REPO_ROOT, AzuriteTable
from .certs import DevCertificate, ensure_dev_certificate
from .processes import die_with_parent_hook, stop_process_group
from .host import READY_PREFIX
from .settings import ACCESS_KEY, acs_connection_string, generate_app_settings


class HostStartError(RuntimeError):
    """The host process exited or did not become ready in time."""


@dataclass
class HostProcess:
    """One `python -m localdev serve` child process.

    `port=0` lets the host pick a free port; after the first start the chosen
    port is kept, so `restart()` comes back on the same URL.
    """

    app: str
    app_dir: Path
    env: Mapping[str, str]
    cert_dir: Path
    port: int = 0
    http_port: int | None = None
    startup_timeout: float = 30.0
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[str] | None = field(default=None, init=False)
    lines: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=20000), init=False)
    _output_seen: threading.Event = field(default_factory=threading.Event, init=False)
    _listening: bool = field(default=False, init=False)
    _reader: threading.Thread | None = field(default=None, init=False)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def http_base_url(self) -> str | None:
        return f"http://127.0.0.1:{self.http_port}" if self.http_port else None

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "localdev", "serve", "--app", self.app,
                   "--app-dir", str(self.app_dir), "--port", str(self.port),
                   "--cert-dir", str(self.cert_dir)]
        if self.http_port is not None:
            command += ["--http-port", str(self.http_port)]
        return command + list(self.extra_args)

    def _child_environment(self) -> dict[str, str]:
        environment = {**os.environ, **self.env}
        # localdev itself and the app module must be importable in the child.
        paths = [str(REPO_ROOT), str(self.app_dir), environment.get("PYTHONPATH", "")]
        environment["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        return environment

    def start(self) -> "HostProcess":
        if self.process is not None:
            return self
        self._output_seen.clear()
        self._listening = False
        self.process = subprocess.Popen(
            self._command(), cwd=self.app_dir, env=self._child_environment(),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, start_new_session=True, preexec_fn=die_with_parent_hook())
        self._reader = threading.Thread(target=self._read_output, args=(self.process,),
                                         name="localdev-host-output", daemon=True)
        self._reader.start()
        self._output_seen.wait(self.startup_timeout)
        if not self._listening or self.process.poll() is not None:
            output = self.output()
            self.stop()
            raise HostStartError(f"`{' '.join(self._command())}` did not become ready:\n{output}")
        return self

    def _read_output(self, process: subprocess.Popen[str]) -> None:
        # Keep draining the pipe for the whole life of the child, or it would
        # block once the pipe buffer fills with log lines.
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line.startswith(READY_PREFIX):
                for url in line[len(READY_PREFIX):].split():
                    scheme, _, port = url.rpartition(":")
                    if scheme.startswith("https"):
                        self.port = int(port)
                    else:
                        self.http_port = int(port)
                self._listening = True
                self._output_seen.set()
        self._output_seen.set()  # exited: wake start() so it reports the failure

    def output(self) -> str:
        """Everything the host printed (stdout and logs)."""
        return "\n".join(self.lines)

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process_group(process, timeout)
        if self._reader is not None:
            self._reader.join(timeout)
            self._reader = None

    def restart(self) -> "HostProcess":
        self.stop()
        return self.start()


@dataclass
class LocalService:
    """Azurite, the app settings, the dev certificate and the running hosts."""

    azurite: AzuriteTable
    settings: dict[str, str]
    certificate: DevCertificate
    app: str
    app_dir: Path
    http: bool = False
    hosts: list[HostProcess] = field(default_factory=list)

    @property
    def host(self) -> HostProcess:
        return self.hosts[0]

    @property
    def base_url(self) -> str:
        return self.host.base_url

    @property
    def http_base_url(self) -> str | None:
        return self.host.http_base_url

    @property
    def access_key(self) -> str:
        return self.settings[ACCESS_KEY]

    @property
    def connection_string(self) -> str:
        """ACS style, `endpoint=https://127.0.0.1:<port>/;accesskey=<key>`, for the first host."""
        return acs_connection_string(self.base_url, self.access_key)

    @property
    def ca_file(self) -> str:
        return str(self.certificate.ca_cert)

    @property
    def storage_connection_string(self) -> str:
        return self.azurite.connection_string

    def ssl_context(self) -> ssl.SSLContext:
        """For aiohttp clients: its default context is built at import, before SSL_CERT_FILE is set."""
        return ssl.create_default_context(cafile=self.ca_file)

    def start_host(self, env: Mapping[str, str] | None = None) -> HostProcess:
        """One more host on the same Azurite and settings (e.g. to test two instances)."""
        host = HostProcess(self.app, self.app_dir, {**self.settings, **(env or {})},
                           self.certificate.ca_cert.parent,
                           http_port=0 if self.http else None)
        self.hosts.append(host)
        return host.start()

    def restart_host(self, index: int = 0) -> HostProcess:
        """Stop and start a host on the same ports (in-memory app state is lost, storage kept)."""
        return self.hosts[index].restart()

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()
        self.azurite.stop()


@contextlib.contextmanager
def local_service(app: str = "function_app:app", *, app_dir: str | os.PathLike[str] = REPO_ROOT,
                  env: Mapping[str, str] | None = None, hosts: int = 1,
                  http: bool = False, certificate: DevCertificate | None = None) -> Iterator[LocalService]:
    """In-memory Azurite on a free port plus `hosts` serve processes for `app`, all over HTTPS.

    The hosts get freshly generated Anteroom settings (keys, resource id,
    the Azurite connection string), overridden by `env`. Azurite and the hosts
    serve `certificate` (default: a new dev CA in a temporary folder); clients
    trust `service.ca_file`. Everything is stopped on exit, also when start-up
    fails half way.
    """
    cert_dir = None if certificate is not None else Path(tempfile.mkdtemp(prefix="localdev-certs-"))
    if certificate is None:
        certificate = ensure_dev_certificate(cert_dir)
    azurite = AzuriteTable(certificate=certificate)
    service: LocalService | None = None
    try:
        azurite.start()
        settings = {**generate_app_settings(azurite.connection_string), **(env or {})}
        service = LocalService(azurite, settings, certificate, app, Path(app_dir).resolve(), http)
        for _ in range(hosts):
            service.start_host()
        yield service
    finally:
        if service is not None:
            service.stop()
        azurite.stop()
        if cert_dir is not None:
            shutil.rmtree(cert_dir, ignore_errors=True)


@contextlib.contextmanager
def serve_app(app: str, *, app_dir: str | os.PathLike[str], env: Mapping[str, str] | None = None,
              http: bool = False, args: Sequence[str] = ()) -> Iterator[HostProcess]:
    """Only a host process (no Azurite), for apps that need no storage; `args` go to `serve`."""
    cert_dir = Path(tempfile.mkdtemp(prefix="localdev-certs-"))
    host = HostProcess(app, Path(app_dir).resolve(), dict(env or {}), cert_dir,
                       http_port=0 if http else None, extra_args=tuple(args))
    try:
        ensure_dev_certificate(cert_dir)
        yield host.start()
    finally:
        host.stop()
        shutil.rmtree(cert_dir, ignore_errors=True)
