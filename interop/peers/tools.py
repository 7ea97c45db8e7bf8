"""Run the real SMB clients against an :class:`~interop.peers.Endpoint` and read their output.

- :func:`smbclient` -- Samba's smbclient with a dialect (``-m``) and a protection level
  (signing required, encryption, or off), one ``-c`` command string per run.
- :func:`smbtorture` / :func:`run_suite` -- one smbtorture test per subprocess, with a
  timeout, its ``--format=subunit`` output parsed into per-subtest results; run_suite
  re-runs the subtests a crashed or timed-out suite never reached, one by one.
- :class:`Capture` / :func:`smb2_check` -- tshark on the loopback interface, and a check
  that Wireshark's dissectors decode a capture without malformed packets or errors.

Every tool runs with a private, empty smb.conf, so the machine's /etc/samba/smb.conf
cannot change what is measured.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from interop.peers import Endpoint, PeerError, stop_popen

__all__ = [
    "PASS",
    "PROTOCOLS",
    "Capture",
    "SmbclientResult",
    "TortureRun",
    "client_conf",
    "list_subtests",
    "parse_subunit",
    "run_suite",
    "smb2_check",
    "smbclient",
    "smbtorture",
]

PROTOCOLS = ("SMB2_02", "SMB2_10", "SMB3_00", "SMB3_02", "SMB3_11", "SMB3")
PROTECTIONS = ("sign", "encrypt", "off")


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PeerError(f"{name} not found: apt-get install -y {package}")
    return found


_CLIENT_CONF: Path | None = None


def client_conf() -> Path:
    """An empty smb.conf for the client tools (created once per process)."""
    global _CLIENT_CONF
    if _CLIENT_CONF is None or not _CLIENT_CONF.exists():
        fd, name = tempfile.mkstemp(prefix="vmstor-client.", suffix=".conf")
        os.write(fd, b"[global]\n")
        os.close(fd)
        _CLIENT_CONF = Path(name)
        atexit.register(_CLIENT_CONF.unlink, missing_ok=True)
    return _CLIENT_CONF


def _run_tree(
    args: Sequence[str], timeout: float, cwd: str | Path | None = None, stdin: bytes | None = None
) -> tuple[int | None, str, float]:
    """Run a program in its own session; on timeout stop it and its children.

    Returns (exit status or None on timeout, stdout+stderr, seconds).
    """
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
        if stdin is not None and proc.stdin is not None:
            proc.stdin.write(stdin)
            proc.stdin.close()
        status: int | None
        try:
            status = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_popen(proc, grace=5.0)
            status = None
        out.seek(0)
        text = out.read().decode(errors="replace")
    return status, text, time.monotonic() - t0


# -- smbclient ---------------------------------------------------------------------------

NT_STATUS = re.compile(r"\bNT_STATUS_[A-Z0-9_]+")


@dataclass(frozen=True)
class SmbclientResult:
    args: list[str]
    returncode: int | None  # None: timed out
    output: str
    seconds: float

    @property
    def errors(self) -> list[str]:
        """The lines that report an NTSTATUS error (smbclient exits 0 after most of them)."""
        return [line for line in self.output.splitlines() if NT_STATUS.search(line)]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.errors


def smbclient_args(
    ep: Endpoint,
    commands: str,
    *,
    protocol: str = "SMB3_11",
    protection: str = "sign",
    share: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The smbclient command line (shown in failures, reusable in a shell)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}")
    if protection not in PROTECTIONS:
        raise ValueError(f"protection must be one of {PROTECTIONS}")
    args = [
        _tool("smbclient", "smbclient"),
        ep.unc(share),
        "-p", str(ep.port),
        "-U", f"{ep.user}%{ep.password}",
        "-m", protocol,
        f"--configfile={client_conf()}",
    ]  # fmt: skip
    if protection == "sign":
        args.append("--option=clientsigning=required")
    elif protection == "encrypt":
        args.append("--client-protection=encrypt")
    else:
        args.append("--client-protection=off")
    return [*args, *extra, "-c", commands]


def smbclient(
    ep: Endpoint,
    commands: str,
    *,
    protocol: str = "SMB3_11",
    protection: str = "sign",
    share: str | None = None,
    timeout: float = 120.0,
    check: bool = True,
    cwd: str | Path | None = None,
    extra: Sequence[str] = (),
) -> SmbclientResult:
    """Run ``smbclient -c COMMANDS``. ``protection``: "sign" (signing required),
    "encrypt" (SMB3 encryption required) or "off". With ``check``, raise PeerError (with
    the command line and output) on a non-zero exit, a timeout or any NT_STATUS error."""
    args = smbclient_args(
        ep, commands, protocol=protocol, protection=protection, share=share, extra=extra
    )
    status, text, secs = _run_tree(args, timeout, cwd=cwd)
    result = SmbclientResult(args, status, text, secs)
    if check and not result.ok:
        why = "timed out" if status is None else f"exit status {status}"
        raise PeerError(f"smbclient {why}: {' '.join(args)}\n{text}")
    return result


# -- smbtorture --------------------------------------------------------------------------

PASS = "pass"
FAIL = "fail"
ERROR = "error"
SKIP = "skip"
XFAIL = "xfail"
TIMEOUT = "timeout"
NOTRUN = "notrun"

_OUTCOMES = {
    "success": PASS,
    "successful": PASS,
    "failure": FAIL,
    "fail": FAIL,
    "error": ERROR,
    "skip": SKIP,
    "xfail": XFAIL,
    "uxsuccess": FAIL,  # unexpectedly passed a known failure: smbtorture's own failure
}
_LINE = re.compile(r"^(test|testing|" + "|".join(_OUTCOMES) + r"): (.*?)( \[)?$")


@dataclass
class TortureRun:
    """The results of one smbtorture invocation (a whole suite, or some of its subtests)."""

    test: str
    results: dict[str, str] = field(default_factory=dict)  # subtest -> outcome, in run order
    reasons: dict[str, str] = field(default_factory=dict)  # subtest -> first line of why
    returncode: int | None = None  # None: the run timed out
    seconds: float = 0.0
    output: str = ""
    notes: list[str] = field(default_factory=list)

    def count(self, *outcomes: str) -> int:
        return sum(1 for r in self.results.values() if r in outcomes)

    @property
    def passed(self) -> set[str]:
        return {t for t, r in self.results.items() if r == PASS}

    def merge(self, other: TortureRun) -> None:
        self.results.update(other.results)
        self.reasons.update(other.reasons)
        self.seconds += other.seconds
        self.output += other.output
        self.notes += other.notes


def parse_subunit(text: str, unfinished: str = ERROR) -> tuple[dict[str, str], dict[str, str]]:
    """smbtorture's ``--format=subunit`` (subunit v1 text) -> (results, reasons).

    A subtest that started and never finished (smbtorture crashed or was stopped) gets
    ``unfinished``. The suite itself also reports an outcome under its own name: it is
    kept, because a suite can fail before any subtest (connection refused).
    """
    results: dict[str, str] = {}
    reasons: dict[str, str] = {}
    started: list[str] = []
    detail_for: str | None = None
    for line in text.splitlines():
        if detail_for is not None:
            if line == "]":
                detail_for = None
            elif line.strip() and detail_for not in reasons:
                reasons[detail_for] = line.strip()
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        kind, name, bracket = m.group(1), m.group(2).strip(), m.group(3)
        if kind in ("test", "testing"):
            started.append(name)
            continue
        results[name] = _OUTCOMES[kind]
        if bracket:
            detail_for = name
    for name in started:
        results.setdefault(name, unfinished)
        if results[name] == unfinished and name not in reasons:
            reasons[name] = "never finished"
    return results, reasons


def smbtorture_args(ep: Endpoint, test: str, extra: Sequence[str] = ()) -> list[str]:
    return [
        _tool("smbtorture", "samba-testsuite"),
        ep.unc(),
        "-p", str(ep.port),  # --option=torture:port= does not set the port; -p does
        "-U", f"{ep.user}%{ep.password}",
        f"--configfile={client_conf()}",
        "--fullname",
        "--format=subunit",
        *extra,
        test,
    ]  # fmt: skip


def smbtorture(ep: Endpoint, test: str, *, timeout: float, extra: Sequence[str] = ()) -> TortureRun:
    """One smbtorture process for ``test`` (a suite like ``smb2.read`` or one subtest).

    Runs in a scratch folder (smbtorture leaves smbtortureXXXXXX folders behind when it
    crashes). Subtests it never reached do not appear; see :func:`run_suite`.
    """
    args = smbtorture_args(ep, test, extra)
    with tempfile.TemporaryDirectory(prefix="vmstor-torture.") as scratch:
        status, text, secs = _run_tree(args, timeout, cwd=scratch)
    results, reasons = parse_subunit(text, unfinished=TIMEOUT if status is None else ERROR)
    run = TortureRun(test, results, reasons, status, secs, text)
    # the suite's own line ("smb2.read" next to "smb2.read.eof") says nothing extra once
    # subtests ran; with no subtests it is the only trace of what happened
    if any(name.startswith(test + ".") for name in results):
        results.pop(test, None)
        reasons.pop(test, None)
    elif not results:
        results[test] = TIMEOUT if status is None else ERROR
        first = next((ln for ln in text.splitlines() if ln.strip()), "no output")
        reasons[test] = f"no results (exit {status}): {first}"
    return run


_LIST_CACHE: dict[str, list[str]] = {}


def list_subtests(suite: str) -> list[str]:
    """The subtests of a suite as smbtorture --fullname reports them (``smb2.read.eof``).

    ``smbtorture --list`` prints ``smb2.read.eof.eof`` (the test case repeated); the
    result name drops that last part.
    """
    if suite not in _LIST_CACHE:
        out = subprocess.run(
            [_tool("smbtorture", "samba-testsuite"), "--list", suite],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        names: list[str] = []
        for line in out.stdout.splitlines():
            line = line.strip()
            if line.startswith(suite + "."):
                name = line.rsplit(".", 1)[0]
                if name not in names:
                    names.append(name)
        _LIST_CACHE[suite] = names
    return _LIST_CACHE[suite]


def run_suite(
    ep: Endpoint,
    suite: str,
    *,
    timeout: float,
    resume_timeout: float = 60.0,
    resume_budget: float | None = None,
    extra: Sequence[str] = (),
) -> TortureRun:
    """Run a whole suite; if smbtorture crashed or timed out, run each subtest it never
    reached on its own (``resume_timeout`` each, ``resume_budget`` seconds in all,
    default ``timeout``). Subtests left when the budget is spent are ``notrun``."""
    run = smbtorture(ep, suite, timeout=timeout, extra=extra)
    if run.returncode is not None and run.returncode <= 1:
        return run
    why = "suite timeout" if run.returncode is None else f"smbtorture exit status {run.returncode}"
    run.notes.append(f"{suite}: {why} after {run.seconds:.0f} s")
    if set(run.results) == {suite}:
        return run  # it never got to a subtest: the server is unusable, do not insist
    deadline = time.monotonic() + (timeout if resume_budget is None else resume_budget)
    resumed = 0
    for name in list_subtests(suite):
        if name in run.results:
            continue
        if time.monotonic() >= deadline:
            run.results[name] = NOTRUN
            run.reasons[name] = "resume budget spent"
            continue
        one = smbtorture(ep, name, timeout=resume_timeout, extra=extra)
        resumed += 1
        run.merge(one)
    run.notes.append(f"{suite}: ran {resumed} unreached subtests one by one")
    return run


# -- tshark ------------------------------------------------------------------------------


class Capture:
    """``tshark -i lo`` capturing TCP ``port`` into ``path`` while the block runs.

    The capture is started and confirmed running before the block; stopping waits for
    tshark to flush the file.
    """

    def __init__(self, path: Path, port: int, interface: str = "lo") -> None:
        self.path = path
        self.port = port
        self.interface = interface
        self.proc: subprocess.Popen[bytes] | None = None
        self._err: Path | None = None

    def __enter__(self) -> Capture:
        tshark = _tool("tshark", "tshark")
        fd, err = tempfile.mkstemp(prefix="vmstor-tshark.", suffix=".log")
        self._err = Path(err)
        self.proc = subprocess.Popen(
            [
                tshark,
                "-n",
                "-i",
                self.interface,
                "-f",
                f"tcp port {self.port}",
                "-w",
                str(self.path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
        )
        os.close(fd)
        deadline = time.monotonic() + 30
        while "Capturing on" not in self._err.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                text = self._err.read_text(errors="replace")
                self._stop()
                raise PeerError(f"tshark did not start capturing: {text}")
            time.sleep(0.05)
        return self

    def _stop(self) -> None:
        if self.proc is not None:
            proc = self.proc
            self.proc = None
            time.sleep(0.3)  # let the last packets reach the capture buffer
            try:
                proc.send_signal(signal.SIGINT)
                proc.wait(15)
            except subprocess.TimeoutExpired:
                stop_popen(proc)
        if self._err is not None:
            self._err.unlink(missing_ok=True)
            self._err = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()


def _tshark_lines(pcap: Path, port: int, display_filter: str, *fields: str) -> Iterator[str]:
    args = [_tool("tshark", "tshark"), "-n", "-r", str(pcap), "-d", f"tcp.port=={port},nbss"]
    args += ["-Y", display_filter]
    if fields:
        args += ["-T", "fields", *(x for f in fields for x in ("-e", f))]
    out = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300)
    if out.returncode != 0:
        raise PeerError(f"tshark failed: {' '.join(args)}\n{out.stderr}")
    yield from (line for line in out.stdout.splitlines() if line.strip())


@dataclass(frozen=True)
class SMB2Check:
    smb2_packets: int
    commands: dict[str, int]  # smb2.cmd value (decimal) -> packets
    malformed: int
    expert_errors: int

    @property
    def ok(self) -> bool:
        return self.smb2_packets > 0 and self.malformed == 0 and self.expert_errors == 0


def smb2_check(pcap: Path, port: int) -> SMB2Check:
    """Decode SMB2 on ``port`` and count packets, commands and problems."""
    commands: dict[str, int] = {}
    packets = 0
    for line in _tshark_lines(pcap, port, "smb2", "smb2.cmd"):
        packets += 1
        for cmd in line.split(","):
            commands[cmd] = commands.get(cmd, 0) + 1
    # Samba's and Windows' NEGOTIATE responses put the SPNEGO negHints sequence where RFC 4178
    # has mechListMIC ([3]); Wireshark reports that one as a BER error. Anything else counts.
    benign = (
        "smb2.cmd == 0 && smb2.flags.response == 1"
        ' && _ws.expert.message contains "OctetString expected but class:UNIVERSAL(0) Constructed"'
    )
    malformed = sum(1 for _ in _tshark_lines(pcap, port, f"_ws.malformed && !({benign})"))
    errors = sum(1 for _ in _tshark_lines(pcap, port, "_ws.expert.severity == error"))
    return SMB2Check(packets, commands, malformed, errors)
