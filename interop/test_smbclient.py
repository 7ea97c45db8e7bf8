"""Samba's smbclient against the server: the everyday file operations and a 1 GiB round trip.

Each protocol/protection pair is one way a real client talks to a VM-host share:
SMB 3.1.1 signed (AES-GMAC) and encrypted (AES-128-GCM), SMB 3 as smbclient's ``-m SMB3``
picks it, and SMB 2.0.2 signed (HMAC-SHA256).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.peers import Endpoint
from interop.peers.tools import Capture, smb2_check, smbclient

MODES = [
    pytest.param("SMB3_11", "sign", id="SMB3_11-signed"),
    pytest.param("SMB3_11", "encrypt", id="SMB3_11-encrypted"),
    pytest.param("SMB3", "sign", id="SMB3-signed"),
    pytest.param("SMB2_02", "sign", id="SMB2_02-signed"),
]
GiB = 1 << 30
# a 1 GiB transfer at 10 MB/s, the least a useful server must do on loopback
BIG_TIMEOUT = 120


def _scratch_root(need: int) -> str | None:
    """/dev/shm when it has room (client-side disk I/O then does not skew the run)."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    return "/dev/shm" if st.f_bavail * st.f_frsize > need else None


@dataclasses.dataclass(frozen=True)
class BigFile:
    path: Path
    size: int
    sha256: str


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 << 20):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="vmstor-interop.", dir=_scratch_root(3 * GiB)))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def big_file(scratch: Path) -> BigFile:
    """1 GiB of random bytes (every block written, nothing sparse), and its SHA-256."""
    path = scratch / "big.bin"
    h = hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(GiB // (4 << 20)):
            chunk = os.urandom(4 << 20)
            h.update(chunk)
            f.write(chunk)
    return BigFile(path, GiB, h.hexdigest())


def _listing(output: str) -> set[str]:
    """Names in smbclient ``ls`` output ("  name   A   size  date")."""
    names = set()
    for line in output.splitlines():
        if line.startswith("  ") and "blocks of size" not in line:
            parts = line.strip().rsplit(None, 7)
            if len(parts) == 8:
                names.add(parts[0])
    return names


@pytest.mark.parametrize(("protocol", "protection"), MODES)
def test_file_operations(server: Endpoint, scratch: Path, protocol: str, protection: str) -> None:
    d = f"ops-{protocol}-{protection}"
    local = scratch / f"{d}.txt"
    payload = os.urandom(200_000) + b"end of file\n"
    local.write_bytes(payload)
    back = scratch / f"{d}.back"

    def run(cmds: str) -> str:
        return smbclient(
            server, cmds, protocol=protocol, protection=protection, cwd=scratch, timeout=60
        ).output

    run(f"mkdir {d}")
    assert (server.share_path / d).is_dir()
    run(f'put "{local}" {d}/a.txt')
    assert (server.share_path / d / "a.txt").read_bytes() == payload
    assert "a.txt" in _listing(run(f"ls {d}/*"))

    run(f"rename {d}/a.txt {d}/b.txt")
    assert _listing(run(f"ls {d}/*")) >= {"b.txt"}
    assert "a.txt" not in _listing(run(f"ls {d}/*"))
    assert not (server.share_path / d / "a.txt").exists()

    run(f'get {d}/b.txt "{back}"')
    assert back.read_bytes() == payload

    run(f"rm {d}/b.txt")
    assert not (server.share_path / d / "b.txt").exists()
    run(f"rmdir {d}")
    assert not (server.share_path / d).exists()
    assert d not in _listing(run("ls"))

    # a missing file is an error the client sees, not a silent success
    missing = smbclient(
        server,
        f"get {d}/nope {scratch}/nope",
        protocol=protocol,
        protection=protection,
        check=False,
    )
    assert any(
        "NT_STATUS_OBJECT_PATH_NOT_FOUND" in e or "NT_STATUS_OBJECT_NAME_NOT_FOUND" in e
        for e in missing.errors
    ), missing.output


@pytest.mark.parametrize(("protocol", "protection"), MODES)
def test_one_gib_round_trip(
    server: Endpoint, scratch: Path, big_file: BigFile, protocol: str, protection: str
) -> None:
    name = f"big-{protocol}-{protection}.bin"
    back = scratch / f"{name}.back"
    smbclient(
        server,
        f'put "{big_file.path}" {name}',
        protocol=protocol,
        protection=protection,
        timeout=BIG_TIMEOUT,
    )
    assert (server.share_path / name).stat().st_size == big_file.size
    try:
        smbclient(
            server,
            f'get {name} "{back}"',
            protocol=protocol,
            protection=protection,
            timeout=BIG_TIMEOUT,
        )
        assert back.stat().st_size == big_file.size
        assert sha256_of(back) == big_file.sha256
    finally:
        back.unlink(missing_ok=True)
        smbclient(server, f"rm {name}", protocol=protocol, protection=protection)
    assert not (server.share_path / name).exists()


def test_wrong_password_is_refused(server: Endpoint) -> None:
    bad = dataclasses.replace(server, password=server.password + "x")
    r = smbclient(bad, "ls", check=False)
    assert r.returncode != 0
    assert "NT_STATUS_LOGON_FAILURE" in r.output, r.output


def test_encrypted_share(server: Endpoint, scratch: Path) -> None:
    """A share that requires encryption: SMB 3.1.1 encrypts on its own (the share says
    so in TREE_CONNECT); SMB 2.0.2 cannot encrypt and is refused (MS-SMB2 3.3.5.7)."""
    assert server.encrypted_share
    local = scratch / "secret.txt"
    local.write_bytes(b"only over encrypted channels\n")
    smbclient(server, f'put "{local}" secret.txt', share=server.encrypted_share, protection="sign")
    assert (server.shares[server.encrypted_share] / "secret.txt").read_bytes() == local.read_bytes()
    old = smbclient(server, "ls", share=server.encrypted_share, protocol="SMB2_02", check=False)
    assert old.returncode != 0
    assert "NT_STATUS_ACCESS_DENIED" in old.output, old.output


def test_wire_decodes_cleanly(server: Endpoint, scratch: Path) -> None:
    """Wireshark decodes a signed SMB 3.1.1 session without malformed packets or errors."""
    local = scratch / "wire.txt"
    local.write_bytes(b"x" * 70_000)
    pcap = scratch / "smbclient.pcapng"
    with Capture(pcap, server.port):
        smbclient(
            server,
            f'mkdir wire; put "{local}" wire/w.txt; get wire/w.txt "{local}.back"; '
            "rm wire/w.txt; rmdir wire",
            protection="sign",
        )
    check = smb2_check(pcap, server.port)
    assert check.ok, check
    # NEGOTIATE, SESSION_SETUP, TREE_CONNECT, CREATE, CLOSE, READ, WRITE, all seen
    assert {"0", "1", "3", "5", "6", "8", "9"} <= set(check.commands), check.commands
