"""Azurite's guardian: a small single-threaded process between a host and Azurite.

    python localdev/azurite_guardian.py --control-fd N [--keep-fd M] [--save-timeout 60]
                                        [--log FILE] -- <azurite command...>

It starts the command as its child and waits until the read end of the host's pipe (`--control-fd`)
reaches end of file: the host closed it on purpose (stop) or the host died, however it died. Then
it sends the child exactly one SIGINT (Azurite saves its data and exits on the first; a second
SIGINT would kill it before it saves), waits up to `--save-timeout` seconds, SIGKILLs it as a last
resort (logged) and exits with the child's status. SIGTERM, SIGINT or SIGHUP sent to the guardian
itself stop it the same way.

Why not let the host signal Azurite: the host is multi-threaded, and a parent-death signal set by a
child fires each time the thread that forked it exits, after the kernel hands the child to another
thread of the dying process. SIGKILL a host with 64 threads and Azurite may get several SIGINTs
within milliseconds. The guardian has one thread, so the parent-death signal it gives its child
(SIGINT) fires at most once, should the guardian itself be killed. It is started in a session of
its own, so neither Ctrl-C nor a closed terminal reaches it or Azurite directly.

`--keep-fd` fds are passed on to the child (the data folder's lock, so it stays held as long as
Azurite runs, even if the guardian is killed); the child's pid is written into the first of them.
Only the standard library is imported: the guardian starts in a few tens of milliseconds.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from typing import Callable, Sequence

_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# Azurite saves its store and exits on SIGINT only (SIGTERM kills it without saving).
GRACEFUL_STOP = signal.SIGINT


class Guardian:
    def __init__(self, command: Sequence[str], *, control_fd: int, keep_fds: Sequence[int] = (),
                 save_timeout: float = 60.0, log_file: str | None = None) -> None:
        self.command = list(command)
        self.control_fd = control_fd
        self.keep_fds = tuple(keep_fds)
        self.save_timeout = save_timeout
        self.log_file = log_file

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} azurite-guardian[{os.getpid()}]: {message}\n"
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except OSError:
            pass
        if self.log_file is not None:  # stderr may be a temporary file of a host that is gone
            try:
                with open(self.log_file, "a", encoding="utf-8") as log:
                    log.write(line)
            except OSError:
                pass

    def run(self) -> int:
        wakeup_read, wakeup_write = os.pipe()
        os.set_blocking(wakeup_read, False)
        os.set_blocking(wakeup_write, False)
        signal.set_wakeup_fd(wakeup_write)
        for signum in (*STOP_SIGNALS, signal.SIGCHLD):
            signal.signal(signum, _wake_only)  # caught (reset to default in the child at exec)

        child = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, pass_fds=self.keep_fds,
                                 preexec_fn=_die_with(os.getpid(), GRACEFUL_STOP))
        self._record_pid(child.pid)
        reason = self._wait_for_stop(child, wakeup_read)
        if reason is None:
            self.log(f"{self.command[0]} exited on its own with status {child.returncode}")
            return _exit_status(child.returncode)
        child.send_signal(GRACEFUL_STOP)  # the only signal it gets from us
        try:
            child.wait(self.save_timeout)
        except subprocess.TimeoutExpired:
            self.log(f"{self.command[0]} (pid {child.pid}) did not exit within {self.save_timeout:g} s of "
                     f"SIGINT ({reason}); SIGKILL: what it had not saved is lost")
            child.kill()
            child.wait()
        return _exit_status(child.returncode)

    def _wait_for_stop(self, child: subprocess.Popen[bytes], wakeup_read: int) -> str | None:
        """Why to stop the child, or None when it exited by itself first."""
        poller = select.poll()
        poller.register(self.control_fd, select.POLLIN)  # POLLHUP is always reported
        poller.register(wakeup_read, select.POLLIN)
        while True:
            if child.poll() is not None:
                return None
            for fd, _ in poller.poll():
                if fd == self.control_fd:
                    if not os.read(self.control_fd, 4096):
                        return "its host closed the control pipe: stopped or died"
                    continue  # the host writes nothing; ignore anything it might
                try:
                    received = os.read(wakeup_read, 512)
                except BlockingIOError:
                    continue
                for signum in received:
                    if signum in STOP_SIGNALS:
                        return f"the guardian got {signal.Signals(signum).name}"

    def _record_pid(self, pid: int) -> None:
        """Into the lock file, for the message of a start that has to wait for this Azurite."""
        if not self.keep_fds:
            return
        try:
            os.ftruncate(self.keep_fds[0], 0)
            os.pwrite(self.keep_fds[0], f"{pid}\n".encode(), 0)
        except OSError:
            pass


def _wake_only(signum: int, frame: object) -> None:
    """The wakeup fd carries the signal to the poll loop; nothing to do here."""


def _die_with(parent_pid: int, signum: int) -> Callable[[], None]:
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork

    def set_death_signal() -> None:
        # Runs in the child between fork and exec. The guardian has one thread, so this fires once.
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent_pid:  # the guardian died before the signal was armed
            os._exit(1)

    return set_death_signal


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="azurite_guardian", description=__doc__.split("\n\n")[0])
    parser.add_argument("--control-fd", type=int, required=True,
                        help="read end of the host's pipe; end of file means stop")
    parser.add_argument("--keep-fd", type=int, action="append", default=[],
                        help="an fd to pass on to the child (repeatable)")
    parser.add_argument("--save-timeout", type=float, default=60.0,
                        help="seconds the child may take to exit after SIGINT before SIGKILL (default 60)")
    parser.add_argument("--log", default=None, help="also append the guardian's own messages here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to guard")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to guard")
    return Guardian(command, control_fd=args.control_fd, keep_fds=args.keep_fd,
                    save_timeout=args.save_timeout, log_file=args.log).run()


if __name__ == "__main__":
    sys.exit(main())
