"""The peer harness itself: the output parsers, the generated configs, starting and
stopping Samba, and the benchmark's Samba-only path."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from interop.peers import Endpoint, descendants, port_is_open, processes_with_argument
from interop.peers.samba import SambaServer
from interop.peers.tools import (
    ERROR,
    FAIL,
    PASS,
    SKIP,
    TIMEOUT,
    list_subtests,
    parse_subunit,
    smbclient,
)
from interop.peers.vmstor import VmstorServer
from interop.test_rpc import smbclient_list
from interop.torture_report import SUITES, read_passing, suite_of

REPO = Path(__file__).resolve().parents[1]

SUBUNIT = """\
smbtorture 4.17.12-Debian
Using seed 1795756855
time: 2026-11-27 05:20:55.308434
progress: 4
test: smb2.lock.valid-request
time: 2026-11-27 05:20:55.326588
success: smb2.lock.valid-request
test: smb2.lock.cancel
failure: smb2.lock.cancel [
../../source4/torture/smb2/lock.c:1262: status was NT_STATUS_OK, expected NT_STATUS_CANCELLED
second line of the reason
]
test: smb2.lock.replay
skip: smb2.lock.replay [
Durable handles not supported
]
test: smb2.lock.errorcode
error: smb2.lock.errorcode
test: smb2.lock.zerobytelength
"""


def test_parse_subunit_outcomes_and_reasons() -> None:
    results, reasons = parse_subunit(SUBUNIT)
    assert results == {
        "smb2.lock.valid-request": PASS,
        "smb2.lock.cancel": FAIL,
        "smb2.lock.replay": SKIP,
        "smb2.lock.errorcode": ERROR,
        "smb2.lock.zerobytelength": ERROR,  # started, never finished
    }
    assert reasons["smb2.lock.cancel"].endswith("expected NT_STATUS_CANCELLED")
    assert reasons["smb2.lock.replay"] == "Durable handles not supported"
    assert reasons["smb2.lock.zerobytelength"] == "never finished"


def test_parse_subunit_timed_out_run() -> None:
    results, _ = parse_subunit(SUBUNIT, unfinished=TIMEOUT)
    assert results["smb2.lock.zerobytelength"] == TIMEOUT


def test_every_suite_has_subtests_and_the_list_names_real_ones() -> None:
    for suite in SUITES:
        if suite != "smb2.connect":  # a single test, no subtests
            assert list_subtests(suite), suite
    known = {t for s in SUITES for t in list_subtests(s)} | set(SUITES)
    unknown = sorted(t for t in read_passing() if t not in known)
    assert not unknown, f"smbtorture_passing.txt names subtests smbtorture does not have: {unknown}"
    assert suite_of("smb2.lease.request") == "smb2.lease"


def test_vmstor_config_is_what_the_readme_documents() -> None:
    srv = VmstorServer(
        encrypt_share=True, extra_shares=("more",), min_dialect="3.0", max_dialect="3.1.1"
    )
    cfg = tomllib.loads(srv._config(45678))
    assert cfg["server"] == {
        "listen": ["127.0.0.1:45678"],
        "state_dir": "state",
        "min_dialect": "3.0",
        "max_dialect": "3.1.1",
    }
    assert cfg["shares"] == {
        "share": {"path": "shares/share", "encrypt": True, "read_only": False},
        "more": {"path": "shares/more", "encrypt": False, "read_only": False},
        "secure": {"path": "shares/secure", "encrypt": True, "read_only": False},
    }
    with pytest.raises(RuntimeError):
        VmstorServer(max_dialect="3.1")


def test_samba_starts_serves_and_stops_cleanly(samba_server: Endpoint) -> None:
    """The session's Samba answers; a second private one starts and leaves nothing behind."""
    assert smbclient(samba_server, "ls").ok
    srv = SambaServer(encrypted_share=None)
    with srv as ep:
        assert ep.kind == "samba" and port_is_open(ep.host, ep.port)
        assert srv.proc is not None
        pid = srv.proc.pid
        (ep.share_path / "hello.txt").write_text("hi\n")
        out = smbclient(ep, "ls", protocol="SMB3_11", protection="encrypt").output
        assert "hello.txt" in out
        tmp = srv.tmp
        assert tmp is not None
        # a named-pipe open starts samba-dcerpcd, which detaches from smbd
        assert smbclient_list(ep).returncode == 0
        assert processes_with_argument(str(tmp / "smb.conf"))
    assert not port_is_open(ep.host, ep.port)
    assert not tmp.exists()
    assert not os.path.exists(f"/proc/{pid}")
    assert descendants(pid) == []
    assert processes_with_argument(str(tmp / "smb.conf")) == []


def test_bench_runs_against_samba_alone() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.smb_bench", "--only", "samba", "--size-mib", "8",
         "--reps", "1", "--small-files", "20", "--depth", "4"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    # glibc here: the client's heap is kept, so its page faults do not set the pace
    assert "client heap kept" in out.stdout, out.stdout
    rows = [line for line in out.stdout.splitlines() if "MB/s" in line or "files/s" in line]
    assert len(rows) == 10, out.stdout
    # the server's CPU per MiB of the Python client's writes and reads (8 MiB may take
    # less than the 10 ms a CPU-time tick counts: zero is a figure too)
    cpu = [line for line in out.stdout.splitlines() if line.startswith("server CPU per MiB")]
    assert len(cpu) == 2, out.stdout
    for row in cpu:
        assert row.split()[-3:-2] != ["-"] and float(row.split()[-3]) >= 0, row
        assert row.split()[-2:] == ["-", "-"], row
    for row in rows:
        cells = row.split()
        # samba figure present and positive, vmstor column and ratio empty
        assert cells[-2:] == ["-", "-"], row
        assert float(cells[-3]) > 0, row
