"""Start and drive the real SMB peers vmstor is tested and measured against.

Every server helper here runs a private, loopback-only server in a temporary folder and
describes it with an :class:`Endpoint`: the interop tests, ``interop.torture_report`` and
``bench/smb_bench.py`` only ever talk to an Endpoint, so each of them runs unchanged
against vmstor and against Samba.

- :mod:`interop.peers.samba`  -- a private ``smbd`` (Samba's test-style share config)
- :mod:`interop.peers.vmstor` -- ``vmstor serve`` with a generated config and user
- :mod:`interop.peers.tools`  -- smbclient, smbtorture and tshark runners and parsers
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Endpoint",
    "PeerError",
    "descendants",
    "free_port",
    "port_is_open",
    "stop_popen",
    "stop_process_tree",
    "wait_for_port",
]


class PeerError(RuntimeError):
    """A peer did not start, did not stop cleanly, or a tool run failed; says why."""


@dataclass(frozen=True)
class Endpoint:
    """Where an SMB server listens and how to log in to it.

    ``share_path`` is the local folder behind ``share`` (tests use it to check what a
    client wrote landed on disk); ``shares`` maps every share name to its folder, the
    main one included; ``encrypted_share`` names a share that requires encryption.
    """

    kind: str  # "vmstor" or "samba"
    host: str
    port: int
    share: str
    user: str
    password: str
    share_path: Path
    shares: dict[str, Path] = field(default_factory=dict)
    encrypted_share: str | None = None
    log_text: Callable[[], str] = field(default=lambda: "", compare=False, repr=False)

    def unc(self, share: str | None = None) -> str:
        """``//host/share`` as smbclient and smbtorture want it."""
        return f"//{self.host}/{share or self.share}"

    def winpath(self, *parts: str, share: str | None = None) -> str:
        r"""``\\host\share\part\...`` as smbprotocol's smbclient API wants it."""
        tail = "\\".join(p.strip("\\/").replace("/", "\\") for p in parts if p)
        base = rf"\\{self.host}\{share or self.share}"
        return f"{base}\\{tail}" if tail else base


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral TCP port that nothing listens on right now.

    Samba binds with SO_REUSEPORT, so a second server on a busy port would silently
    share it; asking the kernel for a fresh port avoids that.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    if port_is_open(host, port):  # pragma: no cover - only a racing process gets here
        raise PeerError(f"{host}:{port} was handed out but is in use")
    return port


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, timeout: float, alive: Callable[[], bool], what: str
) -> None:
    """Wait until host:port accepts a connection, while ``alive()`` stays true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_open(host, port, timeout=0.5):
            return
        if not alive():
            raise PeerError(f"{what} exited before listening on {host}:{port}")
        time.sleep(0.05)
    raise PeerError(f"{what} did not listen on {host}:{port} within {timeout:.0f} s")


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (state, ppid, ...), or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return stat.rsplit(")", 1)[1].split()


def _identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time): tells a process apart from a later one that reuses its PID."""
    fields = _stat(pid)
    return None if fields is None else (pid, fields[19])


def descendants(pid: int) -> list[tuple[int, str]]:
    """Every live descendant of ``pid`` as (pid, start time), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[tuple[int, str]] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if (ident := _identity(child)) is not None:
                found.append(ident)
            todo.append(child)
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as e:
        if e.errno != errno.ESRCH:
            raise


def _alive(ident: tuple[int, str]) -> bool:
    """The very process ``ident`` names still runs (not a zombie, PID not reused)."""
    fields = _stat(ident[0])
    return fields is not None and fields[0] != "Z" and fields[19] == ident[1]


def stop_process_tree(
    pid: int, wait: Callable[[float], int | None], grace: float = 10.0
) -> int | None:
    """SIGTERM ``pid`` (a process this program started), then its leftover descendants.

    ``wait(timeout)`` reaps ``pid`` and returns its exit status, or None on timeout.
    Descendants are looked up by parent PID before the signal (afterwards they are
    orphans), and only they are signalled. Returns ``pid``'s exit status, or None when it
    had to be killed.
    """
    kids = descendants(pid)
    _signal(pid, signal.SIGTERM)
    status = wait(grace)
    if status is None:
        _signal(pid, signal.SIGKILL)
        wait(5.0)
    stop_processes(kids)
    return status


def stop_processes(idents: list[tuple[int, str]]) -> None:
    """SIGTERM the processes ``idents`` names (see :func:`descendants`), SIGKILL what is
    left after 3 seconds; a PID reused meanwhile is never signalled."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        live = [k for k in idents if _alive(k)]
        for k in live:
            _signal(k[0], sig)
        deadline = time.monotonic() + 3.0
        while live and time.monotonic() < deadline:
            live = [k for k in live if _alive(k)]
            time.sleep(0.05)


def processes_with_argument(argument: str) -> list[tuple[int, str]]:
    """Every live process with ``argument`` in its command line, as (pid, start time): for
    helpers a peer starts that detach from it (Samba's samba-dcerpcd daemonizes, so it is
    no descendant of smbd) but carry the peer's private config path."""
    needle = os.fsencode(argument)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(needle in a for a in args) and (ident := _identity(int(entry))) is not None:
            found.append(ident)
    return found


def stop_popen(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """:func:`stop_process_tree` for a process started with subprocess.Popen."""

    def wait(timeout: float) -> int | None:
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    return stop_process_tree(proc.pid, wait, grace)
