"""WRITE ATOMIC(16) (SBC-4 5.48) and its Block Limits VPD fields (SBC-4 6.6.4), with the
ordering that makes it atomic against the unit's other data commands."""

from __future__ import annotations

import struct

import trio

from scsi import Target
from scsi.commands import EXCLUSIVE, Context, io_gate, read_now
from scsi.sense import Status

from .conftest import INI_A, data, ready, run, sense


def wa16(lba: int, blocks: int, flags: int = 0) -> bytes:
    return bytes((0x9C, flags)) + struct.pack(">QHHBB", lba, 0, blocks, 0, 0)


async def read16(t: Target, lun: int, lba: int, blocks: int) -> bytes:
    c = bytes.fromhex("88 00") + struct.pack(">QIBB", lba, blocks, 0, 0)
    return data(await run(t, c, lun=lun))


async def test_sbc4_5_48_write_atomic_16(target: Target) -> None:
    await ready(target)
    cdb = bytes.fromhex("9c 08 0000000000000010 0000 0004 00 00")  # FUA, LBA 16, 4 blocks
    assert cdb == wa16(16, 4, 0x08)
    assert target.data_out_length(cdb, 0) == 2048
    payload = bytes(range(256)) * 8
    assert (await run(target, cdb, payload)).status == Status.GOOD
    assert await read16(target, 0, 16, 4) == payload
    # 4096-byte unit, DPO.
    await ready(target, lun=1)
    assert (await run(target, wa16(3, 1, 0x10), b"\x5a" * 4096, lun=1)).status == Status.GOOD
    assert await read16(target, 1, 3, 1) == b"\x5a" * 4096


async def test_sbc4_5_48_write_atomic_errors(target: Target) -> None:
    await ready(target)
    # More than MAXIMUM ATOMIC TRANSFER LENGTH (2048 blocks of 512 bytes).
    assert sense(await run(target, wa16(0, 2049), bytes(2049 * 512))) == (0x5, 0x24, 0x00)
    # Reserved bytes 10-11.
    bad = bytes.fromhex("9c 00 0000000000000000 0001 0001 00 00")
    r = await run(target, bad, bytes(512))
    assert r.sense == bytes.fromhex("70 00 05 00000000 0a 00000000 24 00 00 c0 000b")
    for wrprotect in range(1, 8):
        assert sense(await run(target, wa16(0, 1, wrprotect << 5), bytes(512)))[1] == 0x24
    assert sense(await run(target, wa16(2047, 2), bytes(1024))) == (0x5, 0x21, 0x00)
    assert (await run(target, wa16(2048, 0))).status == Status.GOOD  # zero blocks
    assert sense(await run(target, wa16(2049, 0))) == (0x5, 0x21, 0x00)
    # Fewer bytes than the CDB asks for: not done at all.
    assert sense(await run(target, wa16(0, 4), bytes(1024))) == (0x5, 0x24, 0x00)
    target.luns[0].read_only = True
    assert sense(await run(target, wa16(0, 1), bytes(512))) == (0x7, 0x27, 0x00)


async def test_sbc4_6_6_4_block_limits_atomic_fields(target: Target) -> None:
    for lun, blocks in ((0, 2048), (1, 256)):
        d = data(await run(target, bytes.fromhex("12 01 b0 00ff 00"), lun=lun))
        assert d[1] == 0xB0 and len(d) == 64
        assert d[44:64] == struct.pack(">IIIII", blocks, 0, 0, 0, 0)
        assert blocks <= struct.unpack_from(">I", d, 8)[0]  # <= MAXIMUM TRANSFER LENGTH


async def test_spc4_6_35_rsoc_write_atomic_usage(target: Target) -> None:
    await ready(target)
    d = data(await run(target, bytes.fromhex("a3 0c 01 9c 0000 00000100 00 00")))
    assert d == bytes.fromhex("00 03 0010 9c f8 ffffffffffffffff 0000 ffff 3f 07")


async def test_sbc4_4_29_write_atomic_waits_for_and_holds_off_other_io(target: Target) -> None:
    """A data command in flight keeps the atomic write waiting; while the atomic write
    runs, new data commands wait and the synchronous read path declines."""
    await ready(target)
    lu = target.luns[0]
    gate = io_gate(lu)
    await gate.enter()  # an ordinary command in flight
    done: list[str] = []

    async def atomic() -> None:
        r = await run(target, wa16(0, 8), b"\xa5" * 4096)
        assert r.status == Status.GOOD
        done.append("atomic")

    async def reader() -> None:
        got = await read16(target, 0, 0, 8)
        assert got == b"\xa5" * 4096  # all of the atomic write, never part of it
        done.append("read")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(atomic)
        await trio.testing.wait_all_tasks_blocked()
        assert gate.exclusive and lu in EXCLUSIVE and done == []
        ctx = Context(target, target._nexus(INI_A), INI_A, 0, lu, wa16(0, 0), None, 0)
        ctx.cdb = bytes.fromhex("88 00 0000000000000000 00000008 00 00")
        assert read_now(ctx) is None  # the fast path stays out of the way
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert done == []
        gate.leave()  # the ordinary command finishes: the atomic write goes first
    assert done == ["atomic", "read"]
    assert (gate.exclusive, lu in EXCLUSIVE, gate.inflight) == (False, False, 0)
