"""Start and stop Azurite's Table service (from the repo's node_modules) on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from .processes import die_with_parent_hook, stop_process_group

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"

# Azurite's fixed development account (public, documented by Microsoft).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu"
               "Fq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")


# Azurite closes its store (writing data to disk) on SIGINT only; SIGTERM
# would lose up to its 5-second autosave interval.
_GRACEFUL_STOP = signal.SIGINT


class AzuriteNotInstalled(RuntimeError):
    """node_modules (with azurite) is missing."""


class AzuriteStartError(RuntimeError):
    """Azurite exited or did not accept connections in time."""


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago (Azurite cannot bind port 0 and tell us which)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class AzuriteTable:
    """Azurite's Table service as a child process in its own process group.

    `location=None` keeps data in memory; otherwise data lives in that folder
    and survives restarts. `port=0` picks a free port.
    """

    def __init__(self, *, location: str | os.PathLike[str] | None = None, port: int = 0,
                 repo_root: str | os.PathLike[str] = REPO_ROOT,
                 startup_timeout: float = 30.0) -> None:
        self.location = Path(location).resolve() if location is not None else None
        self.requested_port = port
        self.port: int | None = None
        self.executable = Path(repo_root) / "node_modules" / ".bin" / "azurite-table"
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("Azurite is not running")
        return f"http://{LOOPBACK}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
                f"AccountKey={ACCOUNT_KEY};TableEndpoint={self.endpoint};")

    def _command(self, port: int) -> list[str]:
        command = [str(self.executable), "--tableHost", LOOPBACK, "--tablePort", str(port),
                   "--disableTelemetry", "--skipApiVersionCheck", "--silent"]
        if self.location is None:
            command.append("--inMemoryPersistence")
        else:
            command += ["--location", str(self.location)]
        return command

    def start(self) -> "AzuriteTable":
        if self.process is not None:
            return self
        if not self.executable.exists():
            raise AzuriteNotInstalled(
                f"{self.executable} not found: run `npm ci` in {self.executable.parents[2]} "
                "to install Azurite")
        if self.location is not None:
            self.location.mkdir(parents=True, exist_ok=True)
        # A free port can be taken between probing and Azurite binding it; retry then.
        attempts = 3 if self.requested_port == 0 else 1
        for attempt in range(attempts):
            port = self.requested_port or free_port()
            try:
                self._launch(port)
                self._wait_until_ready(port)
            except AzuriteStartError:
                self.stop()
                if attempt == attempts - 1:
                    raise
                continue
            self.port = port
            return self
        raise AssertionError("unreachable")

    def _launch(self, port: int) -> None:
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self._command(port),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=self.location or tempfile.gettempdir(),
            start_new_session=True,  # own process group: stop() kills node and any children
            preexec_fn=die_with_parent_hook(_GRACEFUL_STOP),
        )

    def _wait_until_ready(self, port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AzuriteStartError(
                    f"azurite-table exited with {self.process.returncode}: {self.output()}")
            try:
                with socket.create_connection((LOOPBACK, port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AzuriteStartError(f"azurite-table did not listen on port {port} within "
                                f"{self.startup_timeout:.0f} s: {self.output()}")

    def output(self) -> str:
        """What Azurite printed so far (errors only: access logs are silenced)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT the process group so Azurite saves its data and exits; SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is not None:
            stop_process_group(process, timeout, _GRACEFUL_STOP)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.port = None

    def __enter__(self) -> "AzuriteTable":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
