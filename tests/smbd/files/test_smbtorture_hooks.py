"""smbtorture's test-only FSCTLs (smbd.server.files.torture): unknown codes unless the
server config sets ``smbtorture_hooks``; with it, the wire layout smbtorture checks."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
import trio
import trio.testing

from smbd.config import ServerConfig, ShareConfig
from smbd.server.files import FileServerState
from smbd.server.files import torture as t
from smbd.server.request import SMBError
from smbd.wire import ioctl as wio
from smbd.wire import rw
from smbd.wire.constants import Command
from smbd.wire.status import NTStatus
from tests.smbd.files.async_harness import AsyncClient, SharedServer, body_of

NO_FILE = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
HOOKS = (
    t.FSCTL_SMBTORTURE_IOCTL_RESPONSE_BODY_PADDING8,
    t.FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8,
    t.FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP,
)


def _clients(root: Path, hooks: bool) -> tuple[AsyncClient, AsyncClient]:
    root.mkdir()
    share = ShareConfig("vms", root)
    config = ServerConfig(server_guid=bytes(16), smbtorture_hooks=hooks)
    files = FileServerState(config, {"vms": share}, clock=lambda: 0.0, rng=os.urandom)
    server = SharedServer(files)
    return AsyncClient(server, share), AsyncClient(server, share)


@pytest.fixture
def on(tmp_path: Path) -> tuple[AsyncClient, AsyncClient]:
    return _clients(tmp_path / "share", hooks=True)


def _ioctl(code: int, fid: tuple[int, int] = NO_FILE, data: bytes = b"", max_out: int = 0) -> bytes:
    return wio.pack_ioctl_request(code, fid, data, max_output_response=max_out)


def _read(fid: tuple[int, int], length: int) -> bytes:
    return rw.pack_read_request(rw.ReadRequest(0, 0, length, 0, fid, 0, 0, 0))


async def test_hooks_are_unknown_fsctls_by_default(tmp_path: Path) -> None:
    a, _ = _clients(tmp_path / "share", hooks=False)
    f = (await a.create("f")).file_id
    for code in HOOKS:
        body = _ioctl(code, f, b"\x01" if code == t.FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP else b"")
        assert await a.status_of(Command.IOCTL, body) == NTStatus.INVALID_DEVICE_REQUEST


async def test_ioctl_response_body_padding8(on: tuple[AsyncClient, AsyncClient]) -> None:
    a, _ = on
    code = t.FSCTL_SMBTORTURE_IOCTL_RESPONSE_BODY_PADDING8
    body = body_of(await a.call(Command.IOCTL, _ioctl(code, max_out=5)))
    # [MS-SMB2] 2.2.32: 48-byte fixed part, 8 zero bytes, output at 0x78 (not 0x70)
    in_off, in_len, out_off, out_len = struct.unpack_from("<IIII", body, 24)
    assert (in_off, in_len, out_off, out_len) == (0x78, 0, 0x78, 5)
    assert body[48:56] == bytes(8)
    assert body[56:] == b"\x08" * 5
    assert bytes(wio.parse_ioctl_response(body).output) == b"\x08" * 5
    empty = body_of(await a.call(Command.IOCTL, _ioctl(code)))
    assert len(empty) == 56 and struct.unpack_from("<II", empty, 32) == (0x78, 0)
    assert await a.status_of(Command.IOCTL, _ioctl(code, data=b"x")) == NTStatus.INVALID_PARAMETER


async def test_global_read_response_body_padding8(on: tuple[AsyncClient, AsyncClient]) -> None:
    a, b = on
    f = (await a.create("f")).file_id
    await a.write(f, 0, b"abc")
    plain = body_of(await a.call(Command.READ, _read(f, 3)))
    assert plain[2] == 0x50 and plain[16:] == b"abc"
    code = t.FSCTL_SMBTORTURE_GLOBAL_READ_RESPONSE_BODY_PADDING8
    assert await a.status_of(Command.IOCTL, _ioctl(code, data=b"x")) == NTStatus.INVALID_PARAMETER
    out = wio.parse_ioctl_response(body_of(await a.call(Command.IOCTL, _ioctl(code, max_out=1))))
    assert len(out.output) == 0
    # [MS-SMB2] 2.2.20: 16-byte fixed part, 8 zero bytes, data at 0x58, on every READ
    for _ in range(2):
        padded = body_of(await a.call(Command.READ, _read(f, 3)))
        assert padded[2] == 0x58 and padded[16:24] == bytes(8) and padded[24:] == b"abc"
        assert bytes(rw.parse_read_response(padded).data) == b"abc"
    # only the connection that asked
    g = (await b.create("f")).file_id
    assert body_of(await b.call(Command.READ, _read(g, 3)))[2] == 0x50


async def test_fsp_async_sleep(
    on: tuple[AsyncClient, AsyncClient], mock_clock: trio.testing.MockClock
) -> None:
    a, _ = on
    mock_clock.rate = 1.0  # real time until the race below
    code = t.FSCTL_SMBTORTURE_FSP_ASYNC_SLEEP
    f = (await a.create("f")).file_id
    assert (await a.call(Command.IOCTL, _ioctl(code, f, b"\x10"))).status == 0
    assert await a.status_of(Command.IOCTL, _ioctl(code, f, b"")) == NTStatus.INVALID_PARAMETER
    with pytest.raises(SMBError) as e:
        await a.call(Command.IOCTL, _ioctl(code, NO_FILE, b"\x10"))
    assert e.value.status == NTStatus.FILE_CLOSED
    # a CLOSE sent while the IOCTL sleeps waits for it: both succeed (smb2.ioctl.bug14769)
    g = (await a.create("g")).file_id
    done: list[str] = []

    async def sleeper() -> None:
        assert (await a.call(Command.IOCTL, _ioctl(code, g, b"\xff"))).status == 0
        done.append("ioctl")

    async def closer() -> None:
        await a.close(g)
        done.append("close")

    mock_clock.rate = 0.0  # the IOCTL sleeps until the clock is moved
    async with trio.open_nursery() as n:
        n.start_soon(sleeper)
        await trio.testing.wait_all_tasks_blocked()
        n.start_soon(closer)
        await trio.testing.wait_all_tasks_blocked()
        assert done == []
        mock_clock.jump(1)
    assert done == ["ioctl", "close"]
    assert await a.status_of(Command.IOCTL, _ioctl(code, g, b"\x01")) == NTStatus.FILE_CLOSED
    # an open closed by other means (TREE_DISCONNECT, LOGOFF) under the IOCTL: FILE_CLOSED
    h = (await a.create("h")).file_id
    statuses: list[int] = []

    async def sleeper2() -> None:
        statuses.append(await a.status_of(Command.IOCTL, _ioctl(code, h, b"\xff")))

    async with trio.open_nursery() as n:
        n.start_soon(sleeper2)
        await trio.testing.wait_all_tasks_blocked()
        await a.server.files.close(a.server.files.opens[h[1]])
        mock_clock.jump(1)
    assert statuses == [NTStatus.FILE_CLOSED]


def test_config_switch(tmp_path: Path) -> None:
    """``[server] smbtorture_hooks``: false unless the config file says true."""
    from vmstor.config import ConfigError, from_dict
    from vmstor.daemon import smb_config

    path = tmp_path / "vmstor.toml"
    assert not smb_config(from_dict({}, path)).smbtorture_hooks
    assert smb_config(from_dict({"server": {"smbtorture_hooks": True}}, path)).smbtorture_hooks
    with pytest.raises(ConfigError, match="smbtorture_hooks"):
        from_dict({"server": {"smbtorture_hooks": "yes"}}, path)
