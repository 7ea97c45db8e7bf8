"""smbclient (Samba's client) against the server on 127.0.0.1: every dialect family,
signed and encrypted, a few MiB round trip with equal bytes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import trio

from tests.smbd.server.conftest import PASSWORD, USER, Running

SMBCLIENT = shutil.which("smbclient") or "/usr/bin/smbclient"

MODES = {
    "3.1.1-signed": ["-m", "SMB3_11"],
    "3.1.1-encrypted": ["-m", "SMB3_11", "--client-protection=encrypt"],
    "3.0-encrypted": [
        "-m",
        "SMB3_00",
        "--option=client min protocol=SMB3_00",
        "--client-protection=encrypt",
    ],
    "2.1": ["-m", "SMB2_10", "--option=client min protocol=SMB2_10"],
    "2.0.2": ["-m", "SMB2_02", "--option=client min protocol=SMB2_02"],
}


async def smbclient(port: int, share: str, args: list[str], commands: str) -> str:
    cmd = [
        SMBCLIENT,
        f"//127.0.0.1/{share}",
        "-p",
        str(port),
        "-U",
        f"{USER}%{PASSWORD}",
        *args,
        "-c",
        commands,
    ]
    with trio.fail_after(120):
        p = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, out
    assert "NT_STATUS" not in out, out
    return out


@pytest.mark.parametrize("mode", list(MODES))
async def test_smbclient_round_trip(smb: Running, tmp_path: Path, mode: str) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20) + b"tail")
    back = tmp_path / "back.bin"
    out = await smbclient(
        smb.port,
        "share",
        MODES[mode],
        f"mkdir d; put {src} d\\f.bin; rename d\\f.bin d\\g.bin; get d\\g.bin {back}; ls d\\*",
    )
    assert "g.bin" in out
    assert back.read_bytes() == src.read_bytes()
    assert (smb.root / "d" / "g.bin").read_bytes() == src.read_bytes()
    await smbclient(smb.port, "share", MODES[mode], "rm d\\g.bin; rmdir d")
    assert not (smb.root / "d").exists()


async def test_smbclient_encrypted_share(smb: Running) -> None:
    (smb.root / "hello.txt").write_text("hi")
    out = await smbclient(smb.port, "enc", ["-m", "SMB3_11"], "ls")
    assert "hello.txt" in out


async def test_smbclient_wrong_password(smb: Running) -> None:
    cmd = [SMBCLIENT, "//127.0.0.1/share", "-p", str(smb.port), "-U", f"{USER}%nope", "-c", "ls"]
    p = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    assert p.returncode != 0
    assert b"NT_STATUS_LOGON_FAILURE" in p.stdout + p.stderr
