"""The file service end to end: ``vmstor serve`` on an ephemeral loopback port, driven by
Samba's smbclient and smbprotocol's high-level ``smbclient`` module."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import smbclient
from smbprotocol.exceptions import SMBOSError

from interop.peers import Endpoint
from interop.peers.tools import client_conf
from interop.peers.vmstor import VmstorServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ep() -> Iterator[Endpoint]:
    with VmstorServer() as endpoint:
        yield endpoint


@pytest.fixture
def session(ep: Endpoint) -> Iterator[Endpoint]:
    smbclient.register_session(
        ep.host, username=ep.user, password=ep.password, port=ep.port, require_signing=True
    )
    try:
        yield ep
    finally:
        smbclient.reset_connection_cache()


def _smbclient(ep: Endpoint, commands: str, cwd: Path) -> str:
    proc = subprocess.run(
        [
            "smbclient",
            ep.unc(),
            "-p",
            str(ep.port),
            "-U",
            f"{ep.user}%{ep.password}",
            "-m",
            "SMB3_11",
            f"--configfile={client_conf()}",
            "-c",
            commands,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_smbclient_ls_mkdir_put_get_rename_rm(ep: Endpoint, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "f").write_bytes(payload)
    d = f"d{uuid.uuid4().hex[:8]}"
    _smbclient(ep, f"mkdir {d}; cd {d}; put f; get f g; rename f a; ls", tmp_path)
    assert (tmp_path / "g").read_bytes() == payload
    assert (ep.share_path / d / "a").read_bytes() == payload
    out = _smbclient(ep, f"cd {d}; ls; rm a; cd ..; rmdir {d}; ls", tmp_path)
    assert " a " in out
    assert not (ep.share_path / d).exists()


def test_smbprotocol_round_trip(session: Endpoint) -> None:
    ep = session
    base = ep.winpath(f"p{uuid.uuid4().hex[:8]}")
    smbclient.mkdir(base, port=ep.port)
    data = os.urandom(5 * 1024 * 1024)
    with smbclient.open_file(base + "\\big.bin", mode="wb", port=ep.port) as f:
        f.write(data)
    with smbclient.open_file(base + "\\big.bin", mode="rb", port=ep.port) as f:
        got = f.read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert smbclient.stat(base + "\\big.bin", port=ep.port).st_size == len(data)
    smbclient.rename(base + "\\big.bin", base + "\\renamed.bin", port=ep.port)
    assert sorted(smbclient.listdir(base, port=ep.port)) == ["renamed.bin"]
    smbclient.remove(base + "\\renamed.bin", port=ep.port)
    smbclient.rmdir(base, port=ep.port)
    assert not any(p.name.startswith(Path(base).name) for p in ep.share_path.iterdir())


def test_sparse_write_stays_sparse(session: Endpoint) -> None:
    ep = session
    name = f"sparse{uuid.uuid4().hex[:8]}"
    with smbclient.open_file(ep.winpath(name), mode="wb", port=ep.port) as f:
        f.seek(1 << 30)
        f.write(b"end")
    st = os.stat(ep.share_path / name)
    assert st.st_size == (1 << 30) + 3
    assert st.st_blocks * 512 <= 64 * 1024
    smbclient.remove(ep.winpath(name), port=ep.port)


def test_symlinks_cannot_reach_outside(session: Endpoint, tmp_path: Path) -> None:
    ep = session
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    tag = uuid.uuid4().hex[:8]
    (ep.share_path / f"root{tag}").symlink_to("/")
    (ep.share_path / f"sib{tag}").symlink_to(outside)
    try:
        for path in (f"root{tag}\\etc\\passwd", f"sib{tag}\\secret", f"sib{tag}"):
            with (
                pytest.raises(SMBOSError),
                smbclient.open_file(ep.winpath(path), mode="rb", port=ep.port) as f,
            ):
                f.read()
        new = ep.winpath(f"sib{tag}\\new")
        with pytest.raises(SMBOSError), smbclient.open_file(new, mode="wb", port=ep.port) as f:
            f.write(b"x")
        with pytest.raises(SMBOSError):
            smbclient.open_file(ep.winpath(f"..\\{tag}"), mode="rb", port=ep.port)
        assert sorted(os.listdir(outside)) == ["secret"]
        assert f"sib{tag}" not in smbclient.listdir(ep.winpath(""), port=ep.port)
    finally:
        (ep.share_path / f"root{tag}").unlink()
        (ep.share_path / f"sib{tag}").unlink()


def test_sharing_violation(session: Endpoint) -> None:
    ep = session
    name = ep.winpath(f"share{uuid.uuid4().hex[:8]}")
    with smbclient.open_file(name, mode="wb", share_access="r", port=ep.port) as f:
        f.write(b"x")
        f.flush()
        with pytest.raises(SMBOSError) as ei:
            smbclient.open_file(name, mode="ab", port=ep.port)
        assert "SHARING_VIOLATION" in str(ei.value) or ei.value.ntstatus == 0xC0000043
        with smbclient.open_file(name, mode="rb", share_access="rw", port=ep.port) as g:
            assert g.read() == b"x"
    smbclient.remove(name, port=ep.port)
