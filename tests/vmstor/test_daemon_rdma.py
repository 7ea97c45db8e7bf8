"""The daemon's ``[rdma]`` table: SMB over SMB Direct beside TCP (userspace iWARP)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from rdma.iwarp.provider import IwarpDevice
from rdma.smbdirect import connect
from smbd.client import SMBClient
from vmstor import control
from vmstor.config import ConfigError, load
from vmstor.daemon import Daemon
from vmstor.users import UserDB


def write_config(tmp_path: Path, rdma: str) -> Path:
    path = tmp_path / "vmstor.toml"
    path.write_text(
        '[server]\nlisten = ["127.0.0.1:0"]\nstate_dir = "state"\n'
        '[shares.vms]\npath = "vms"\n' + rdma
    )
    return path


async def test_rdma_listen_serves_smb_over_smb_direct(tmp_path: Path) -> None:
    cfg = load(write_config(tmp_path, '[rdma]\nlisten = ["127.0.0.1:0"]\nprovider = "iwarp"\n'))
    daemon = Daemon(cfg)
    UserDB(cfg.state_dir).add("vm", "Secret-123")
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        ((host, port),) = daemon.smb.rdma_listening
        async with IwarpDevice.open() as dev, connect(dev, host, port) as ch:
            client = SMBClient.over_smbdirect(ch)
            await client.negotiate()
            await client.session_setup("vm", "Secret-123")
            tid = await client.tree_connect(r"\\127.0.0.1\vms")
            fid = await client.create(tid, "disk.img", create=True)
            assert await client.write(tid, fid, 0, bytes(range(256)) * 4096) == 1 << 20
            await client.close(tid, fid)
            status = await trio.to_thread.run_sync(control.request, cfg.state_dir, "status")
            assert [c["transport"] for c in status["smb"]["channels"]] == ["rdma"]
        assert client.rdma_writes == 1
        assert (cfg.shares["vms"].path / "disk.img").read_bytes() == bytes(range(256)) * 4096
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "table",
    ['[rdma]\nlisten = ["127.0.0.1:5445"]\nprovider = "infiniband"\n', "[rdma]\nlisten = 5\n"],
    ids=["provider", "listen"],
)
def test_bad_rdma_table_is_a_config_error(tmp_path: Path, table: str) -> None:
    cfg = load(write_config(tmp_path, table))
    with pytest.raises(ConfigError, match=r"\[rdma\]"):
        Daemon(cfg)
