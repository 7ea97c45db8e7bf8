"""Mutated requests against a live, authenticated server: every one gets an NTSTATUS or a
disconnect; none reaches a handler bug (INTERNAL_ERROR) or an exception in the log, and
the server keeps serving."""

from __future__ import annotations

import logging
import random
import struct

import pytest
import trio

from smbd.wire import negotiate as nego
from smbd.wire.constants import Command
from smbd.wire.ioctl import pack_ioctl_request
from smbd.wire.misc import SIMPLE_BODY
from smbd.wire.session import pack_session_setup_request
from smbd.wire.status import NTStatus
from smbd.wire.tree import pack_tree_connect_request
from tests.smbd.server.conftest import Running
from tests.smbd.server.rawclient import Disconnected, RawClient

SEEDS = {
    Command.NEGOTIATE: nego.pack_negotiate_request([0x0202, 0x0311]),
    Command.SESSION_SETUP: pack_session_setup_request(b"\x60\x00"),
    Command.LOGOFF: SIMPLE_BODY,
    Command.TREE_CONNECT: pack_tree_connect_request(r"\\x\share"),
    Command.TREE_DISCONNECT: SIMPLE_BODY,
    Command.ECHO: SIMPLE_BODY,
    Command.CANCEL: SIMPLE_BODY,
    Command.IOCTL: pack_ioctl_request(0x00140204, (0xFFFFFFFFFFFFFFFF,) * 2, bytes(28)),
}


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.5 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.7:
            b = b[: rng.randrange(len(b) + 1)]
        elif op < 0.85:
            b += rng.randbytes(rng.randint(1, 16))
        elif len(b) >= 4:
            pos = rng.randrange(len(b) - 3)
            b[pos : pos + 4] = struct.pack("<I", rng.choice([0, 0xFFFFFFFF, 0x80000000, 64]))
    return bytes(b)


@pytest.mark.parametrize("seed", range(4))
async def test_mutated_requests(smb: Running, seed: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="smbd")
    rng = random.Random(seed)
    c: RawClient | None = None
    tid = 0
    statuses: set[int] = set()
    for _ in range(150):
        if c is None:
            c = await smb.session((rng.choice([0x0210, 0x0302, 0x0311]),))
            tid = (await c.tree_connect(r"\\x\IPC$")).header.tree_id
        cmd = rng.choice(list(SEEDS))
        body = mutate(rng, SEEDS[cmd])
        h = c.header(cmd, tree_id=tid)
        try:
            await c.send(c.build(h, body))
            if cmd == Command.CANCEL:
                continue
            with trio.fail_after(5):
                r = await c.recv_one()
        except (Disconnected, trio.BrokenResourceError):
            c = None
            continue
        statuses.add(r.status)
        assert r.status != NTStatus.INTERNAL_ERROR
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(statuses) > 1
    other = await smb.session()
    assert (await other.call(Command.ECHO, SIMPLE_BODY)).status == 0


async def test_mutated_frames_before_negotiate(smb: Running) -> None:
    rng = random.Random(7)
    seed = nego.pack_smb1_negotiate(["NT LM 0.12", "SMB 2.002", "SMB 2.???"])
    smb2 = RawClient(None)  # type: ignore[arg-type]
    smb2_frame = smb2.build(smb2.header(Command.NEGOTIATE), SEEDS[Command.NEGOTIATE])
    for i in range(60):
        c = await smb.client()
        frame = mutate(rng, seed if i % 2 else smb2_frame)
        await c.send_frame(frame)
        try:
            with trio.fail_after(5):
                await c.recv_frame()
        except Disconnected:
            pass
        await c.aclose()
        smb.clients.remove(c)
    assert (await (await smb.session()).call(Command.ECHO, SIMPLE_BODY)).status == 0
