"""SBC-3 block commands against a thin (512-byte blocks) and a thick (4096-byte) LU."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import trio
import trio.testing

from scsi import FileBackend, Target
from scsi.sense import Status

from .conftest import BLOCKS, INI_A, data, ready, run, sense


async def test_sbc3_5_15_read_capacity_10(target: Target) -> None:
    await ready(target)
    d = data(await run(target, bytes.fromhex("25 00 00000000 0000 00 00")))
    assert d == struct.pack(">II", BLOCKS - 1, 512)
    # LBA set without PMI is invalid.
    assert sense(await run(target, bytes.fromhex("25 00 00000001 0000 00 00"))) == (5, 0x24, 0)


async def test_sbc3_5_16_read_capacity_16_thin_and_thick(target: Target) -> None:
    await ready(target)
    d = data(await run(target, bytes.fromhex("9e 10 0000000000000000 00000020 00 00")))
    assert d == bytes.fromhex(
        "00000000000007ff"  # RETURNED LOGICAL BLOCK ADDRESS
        "00000200"  # LOGICAL BLOCK LENGTH
        "00"  # P_TYPE / PROT_EN
        "03"  # LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT: 4096-byte physical blocks
        "c000" + "00" * 16  # LBPME | LBPRZ, LOWEST ALIGNED LBA
    )
    await ready(target, lun=1)
    d = data(await run(target, bytes.fromhex("9e 10 0000000000000000 00000020 00 00"), lun=1))
    assert d[:14] == bytes.fromhex("00000000000000ff 00001000 0000")  # 4096: exponent 0
    assert d[14] == 0x00  # thick: no LBPME
    # Allocation length truncates.
    d = data(await run(target, bytes.fromhex("9e 10 0000000000000000 00000008 00 00")))
    assert d == bytes.fromhex("00000000000007ff")


async def test_sbc3_5_x_write_read_round_trip_all_sizes(target: Target) -> None:
    await ready(target)
    pattern = os.urandom(2 * 512)
    cdbs = [
        (bytes.fromhex("0a 00 00 10 02 00"), bytes.fromhex("08 00 00 10 02 00")),
        (bytes.fromhex("2a 00 00000020 00 0002 00"), bytes.fromhex("28 00 00000020 00 0002 00")),
        (
            bytes.fromhex("aa 00 00000030 00000002 00 00"),
            bytes.fromhex("a8 00 00000030 00000002 00 00"),
        ),
        (
            bytes.fromhex("8a 08 0000000000000040 00000002 00 00"),  # FUA
            bytes.fromhex("88 00 0000000000000040 00000002 00 00"),
        ),
    ]
    for w, r in cdbs:
        assert (await run(target, w, pattern)).status == Status.GOOD
        assert data(await run(target, r)) == pattern


async def test_sbc3_5_11_read_6_zero_length_means_256(target: Target) -> None:
    await ready(target)
    d = data(await run(target, bytes.fromhex("08 00 00 00 00 00")))
    assert len(d) == 256 * 512


async def test_sbc3_lba_out_of_range(target: Target) -> None:
    await ready(target)
    r = await run(target, bytes.fromhex("28 00 000007ff 00 0002 00"))
    assert sense(r) == (0x5, 0x21, 0x00)
    r = await run(target, bytes.fromhex("88 00 ffffffffffffffff 00000001 00 00"))
    assert sense(r) == (0x5, 0x21, 0x00)
    # Zero blocks at the last LBA is fine; beyond it is not.
    assert (await run(target, bytes.fromhex("28 00 000007ff 00 0000 00"))).status == 0
    assert sense(await run(target, bytes.fromhex("28 00 00000801 00 0000 00")))[1] == 0x21


async def test_sbc3_rdprotect_without_protection_information(target: Target) -> None:
    await ready(target)
    r = await run(target, bytes.fromhex("28 20 00000000 00 0001 00"))
    assert sense(r) == (0x5, 0x24, 0x00)
    assert r.sense[15:18] == bytes.fromhex("cf0001")


async def test_sbc3_5_22_verify_bytchk(target: Target) -> None:
    await ready(target)
    block = b"\x5a" * 512
    await run(target, bytes.fromhex("2a 00 00000005 00 0001 00"), block)
    assert (await run(target, bytes.fromhex("2f 02 00000005 00 0001 00"), block)).status == 0
    bad = bytearray(block)
    bad[100] = 0
    r = await run(target, bytes.fromhex("2f 02 00000005 00 0001 00"), bytes(bad))
    assert sense(r) == (0xE, 0x1D, 0x00)
    assert r.sense[0] == 0xF0 and r.sense[3:7] == struct.pack(">I", 100)
    # BYTCHK=0: medium verification only.
    assert (await run(target, bytes.fromhex("2f 00 00000005 00 0001 00"))).status == 0


async def test_sbc3_5_2_compare_and_write(target: Target) -> None:
    await ready(target)
    a, b = b"A" * 512, b"B" * 512
    await run(target, bytes.fromhex("2a 00 00000009 00 0001 00"), a)
    cdb = bytes.fromhex("89 00 0000000000000009 000000 01 00 00")
    assert (await run(target, cdb, a + b)).status == Status.GOOD
    assert data(await run(target, bytes.fromhex("28 00 00000009 00 0001 00"))) == b
    r = await run(target, cdb, a + b)
    assert sense(r) == (0xE, 0x1D, 0x00)
    assert r.sense[3:7] == bytes(4)  # miscompare at offset 0
    # An expected data-out length that does not match the CDB is invalid.
    r = await target.execute(
        target.nexuses()[0], 0, cdb, memoryview(b + a), expected_in=0, expected_out=512
    )
    assert sense(r) == (0x5, 0x24, 0x00)


async def test_sbc3_5_28_unmap_and_get_lba_status(target: Target) -> None:
    await ready(target)
    await run(target, bytes.fromhex("2a 00 00000000 00 0100 00"), b"\xff" * (256 * 512))
    params = bytes.fromhex("0016 0010 00000000 0000000000000000 00000080 00000000")
    cdb = bytes.fromhex("42 00 000000 00 00 0018 00")
    assert (await run(target, cdb, params)).status == Status.GOOD
    assert data(await run(target, bytes.fromhex("28 00 00000000 00 0080 00"))) == bytes(128 * 512)
    d = data(await run(target, bytes.fromhex("9e 12 0000000000000000 00000028 00 00")))
    plen, _ = struct.unpack(">II", d[:8])
    assert plen == len(d) - 4 or len(d) == 0x28
    lba, n, status = struct.unpack(">QIB", d[8:21])
    assert (lba, status) == (0, 1)  # deallocated
    assert n >= 128 - 8  # whole filesystem blocks of the range
    lba, n, status = struct.unpack(">QIB", d[24:37])
    assert status == 0 and lba <= 128


async def test_sbc3_5_28_unmap_parameter_list_errors(target: Target) -> None:
    await ready(target)
    cdb = bytes.fromhex("42 00 000000 00 00 0004 00")
    assert sense(await run(target, cdb, bytes(4))) == (0x5, 0x1A, 0x00)
    params = bytes.fromhex("0016 0010 00000000 00000000000007ff 00000002 00000000")
    r = await run(target, bytes.fromhex("42 00 000000 00 00 0018 00"), params)
    assert sense(r) == (0x5, 0x21, 0x00)
    # The thick LU has no logical block provisioning.
    await ready(target, lun=1)
    r = await run(target, bytes.fromhex("42 00 000000 00 00 0018 00"), params, lun=1)
    assert sense(r) == (0x5, 0x20, 0x00)


async def test_sbc3_5_41_write_same(target: Target) -> None:
    await ready(target)
    block = bytes(range(256)) * 2
    assert (await run(target, bytes.fromhex("41 00 00000010 00 0004 00"), block)).status == 0
    assert data(await run(target, bytes.fromhex("28 00 00000010 00 0004 00"))) == block * 4
    # UNMAP=1: deallocated, reads as zeros (LBPRZ).
    assert (
        await run(target, bytes.fromhex("93 08 0000000000000010 00000004 00 00"), block)
    ).status == 0
    assert data(await run(target, bytes.fromhex("28 00 00000010 00 0004 00"))) == bytes(2048)
    # ANCHOR without ANC_SUP, and a data-out that is not one block.
    assert sense(await run(target, bytes.fromhex("41 10 00000010 00 0001 00"), block))[1] == 0x24
    assert (
        sense(await run(target, bytes.fromhex("41 00 00000010 00 0001 00"), block[:100]))[1] == 0x24
    )
    # The initiator announcing a data-out (EDTL) of more than one block: the target saw
    # one block, but the command is still INVALID FIELD IN CDB (SBC-3 5.42).
    r = await target.execute(
        target.nexuses()[0],
        0,
        bytes.fromhex("41 08 00000010 00 0001 00"),
        memoryview(block),
        expected_in=0,
        expected_out=1024,
    )
    assert sense(r)[1] == 0x24
    # NDOB writes zeros without data-out.
    await run(target, bytes.fromhex("41 00 00000020 00 0001 00"), block)
    assert (await run(target, bytes.fromhex("93 01 0000000000000020 00000001 00 00"))).status == 0
    assert data(await run(target, bytes.fromhex("28 00 00000020 00 0001 00"))) == bytes(512)


async def test_sbc3_5_41_write_same_zero_blocks_to_end(target: Target) -> None:
    await ready(target)
    block = b"\x11" * 512
    assert (await run(target, bytes.fromhex("41 00 000007fc 00 0000 00"), block)).status == 0
    assert data(await run(target, bytes.fromhex("28 00 000007fc 00 0004 00"))) == block * 4


async def test_sbc3_5_20_synchronize_cache(target: Target) -> None:
    await ready(target)
    assert (await run(target, bytes.fromhex("35 00 00000000 00 0000 00"))).status == 0
    assert (await run(target, bytes.fromhex("91 00 0000000000000000 00000800 00 00"))).status == 0
    r = await run(target, bytes.fromhex("35 00 00000800 00 0001 00"))
    assert sense(r) == (0x5, 0x21, 0x00)


async def test_sbc3_short_data_out_writes_what_arrived(target: Target) -> None:
    """RFC 7143 11.4.5.1 overflow: EDTL one block, CDB two blocks."""
    await ready(target)
    await run(target, bytes.fromhex("2a 00 00000040 00 0002 00"), b"a" * 1024)
    assert (await run(target, bytes.fromhex("2a 00 00000040 00 0002 00"), b"b" * 512)).status == 0
    d = data(await run(target, bytes.fromhex("28 00 00000040 00 0002 00")))
    assert d == b"b" * 512 + b"a" * 512


async def test_sbc3_data_out_length(target: Target) -> None:
    assert target.data_out_length(bytes.fromhex("2a 00 00000000 00 0008 00"), 0) == 8 * 512
    assert target.data_out_length(bytes.fromhex("2a 00 00000000 00 0008 00"), 1) == 8 * 4096
    assert (
        target.data_out_length(bytes.fromhex("89 00 0000000000000000 000000 02 00 00"), 0) == 2048
    )
    assert target.data_out_length(bytes.fromhex("41 00 00000000 00 0008 00"), 0) == 512
    assert target.data_out_length(bytes.fromhex("93 01 0000000000000000 00000008 00 00"), 0) == 0
    assert target.data_out_length(bytes.fromhex("2f 00 00000000 00 0008 00"), 0) == 0
    assert target.data_out_length(bytes.fromhex("2f 02 00000000 00 0008 00"), 0) == 4096
    assert target.data_out_length(bytes.fromhex("5f 00 00 0000 00000018 00"), 0) == 24
    assert target.data_out_length(bytes.fromhex("42 00 000000 00 00 0018 00"), 0) == 24
    assert target.data_out_length(bytes(6), 0) == 0


async def test_sbc3_backend_errors_become_sense_data(target: Target) -> None:
    await ready(target)
    lu = target.luns[0]

    async def full(*args: object, **kw: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    async def broken(*args: object, **kw: object) -> bytearray:
        raise OSError(errno.EIO, "Input/output error")

    lu.backend.write = full  # type: ignore[method-assign]
    lu.backend.read = broken  # type: ignore[method-assign]
    # Thin provisioning out of space: SPACE ALLOCATION FAILED WRITE PROTECT.
    r = await run(target, bytes.fromhex("2a 00 00000000 00 0001 00"), bytes(512))
    assert sense(r) == (0x7, 0x27, 0x07)
    r = await run(target, bytes.fromhex("28 00 00000000 00 0001 00"))
    assert sense(r) == (0x3, 0x11, 0x00)
    assert target.statistics()["io_errors"] == 2


async def test_sbc3_4_6_capacity_data_has_changed(target: Target) -> None:
    await ready(target)
    lu = target.luns[0]
    assert isinstance(lu.backend, FileBackend)
    lu.backend.grow(2 * BLOCKS * 512)
    target.capacity_changed(0)
    assert sense(await run(target, bytes(6))) == (0x6, 0x2A, 0x09)
    d = data(await run(target, bytes.fromhex("25 00 00000000 0000 00 00")))
    assert d == struct.pack(">II", 2 * BLOCKS - 1, 512)


async def test_sbc3_5_8_execute_now_answers_cached_reads_like_execute(target: Target) -> None:
    """Target.execute_now: a READ the page cache holds finishes at once with what
    execute() would answer; a pending unit attention is reported the same way; other
    commands (and reads that would wait) are None, having changed nothing."""
    nexus = INI_A
    read10 = bytes.fromhex("28 00 00000010 00 0002 00")
    r = target.execute_now(nexus, 0, read10, expected_in=1024)
    assert r is not None and r.status == Status.CHECK_CONDITION  # 29/00 after power on
    assert sense(r) == (6, 0x29, 0)
    pattern = os.urandom(1024)
    assert (await run(target, bytes.fromhex("2a 00 00000010 00 0002 00"), pattern)).status == 0
    r = target.execute_now(nexus, 0, read10, expected_in=1024)
    assert r is not None and data(r) == pattern
    # Out of range: the same sense as execute().
    r = target.execute_now(nexus, 0, bytes.fromhex("28 00 000007ff 00 0002 00"), expected_in=1024)
    assert r is not None and sense(r) == (5, 0x21, 0)
    # No LU there: LOGICAL UNIT NOT SUPPORTED, as from execute().
    r = target.execute_now(nexus, 7, read10, expected_in=1024)
    assert r is not None and sense(r) == (5, 0x25, 0)
    # Not a read: the transport must await execute().
    assert target.execute_now(nexus, 0, bytes(6), expected_in=0) is None
    assert target.statistics()["commands"] == 5  # the ones answered, counted once each


async def test_sbc3_5_8_read_now_into_only_serves_what_execute_answers_with_good(
    target: Target,
) -> None:
    """Target.read_now_into, the transport's READ fast path: it fills the buffer and
    counts the command only where execute() would answer GOOD with the same data; a
    pending unit attention, a reservation, an inactive port group, protection bits, a
    range or length mismatch are False with nothing changed (the UA stays pending)."""
    nexus = INI_A
    read10 = bytes.fromhex("28 00 00000010 00 0002 00")
    buf = bytearray(1024)
    assert not target.read_now_into(nexus, 0, read10, memoryview(buf))
    assert target.statistics()["commands"] == 0  # no nexus yet: 29/00 is the full path's
    await ready(target)
    pattern = os.urandom(1024)
    assert (await run(target, bytes.fromhex("2a 00 00000010 00 0002 00"), pattern)).status == 0
    before = target.statistics()["commands"]
    assert isinstance(before, int)
    assert target.read_now_into(nexus, 0, read10, memoryview(buf)) and buf == pattern
    read16 = bytes.fromhex("88 00 0000000000000010 00000002 00 00")
    assert target.read_now_into(nexus, 0, read16, memoryview(buf)) and buf == pattern
    assert target.statistics()["commands"] == before + 2
    assert target.luns[0].stats["read_bytes"] >= 2048
    refused = [
        (0, bytes.fromhex("28 20 00000010 00 0002 00"), 1024),  # RDPROTECT
        (0, bytes.fromhex("28 00 00000010 00 0002 04"), 1024),  # NACA
        (0, bytes.fromhex("28 00 000007ff 00 0002 00"), 1024),  # beyond the last LBA
        (0, read10, 512),  # EDTL shorter than the transfer: residuals are the full path's
        (0, bytes.fromhex("28 00 00000010 00 0000 00"), 0),  # no transfer
        (0, bytes.fromhex("08 00 00 10 02 00"), 1024),  # READ(6): not served here
        (7, read10, 1024),  # no LU
    ]
    for lun, cdb, n in refused:
        assert not target.read_now_into(nexus, lun, cdb, memoryview(bytearray(n))), cdb.hex()
    # An SPC-2 reservation, even our own, sends reads down the full path.
    assert (await run(target, bytes.fromhex("16 00 00 00 00 00"))).status == 0
    assert not target.read_now_into(nexus, 0, read10, memoryview(buf))
    assert (await run(target, bytes.fromhex("17 00 00 00 00 00"))).status == 0
    # A port group going standby, and the unit attention it leaves behind.
    target.set_alua_state(1, "standby")
    assert not target.read_now_into(nexus, 0, read10, memoryview(buf))
    target.set_alua_state(1, "active/optimized")
    assert not target.read_now_into(nexus, 0, read10, memoryview(buf))
    assert sense(await run(target, read10)) == (6, 0x2A, 0x06)
    assert target.read_now_into(nexus, 0, read10, memoryview(buf))
    assert target.statistics()["commands"] == before + 2 + 4


async def test_sbc3_5_8_read_span_serves_cached_data_from_the_lun_file(target: Target) -> None:
    """Target.read_span, the zero-copy READ path: where read_now_into would serve, it
    gives the backend and the byte offset of the data in its file (which holds what
    execute() reads), counting the command; the same refusals, and data the page cache
    does not hold, give None with nothing counted."""
    nexus = INI_A
    await ready(target)
    await ready(target, lun=1)
    pattern = os.urandom(4096)
    assert (await run(target, bytes.fromhex("2a 00 00000010 00 0008 00"), pattern)).status == 0
    read16 = bytes.fromhex("88 00 0000000000000001 00000001 00 00")  # thick: 4 KiB blocks
    assert (await run(target, read16, lun=1)).status == 0  # brings the block in
    before = target.statistics()["commands"]
    assert isinstance(before, int)
    read10 = bytes.fromhex("28 00 00000010 00 0008 00")
    span = target.read_span(nexus, 0, read10, 4096)
    assert span is not None
    backend, offset, hold = span
    assert backend is target.luns[0].backend and offset == 16 * 512
    assert os.pread(backend.fileno(), 4096, offset) == pattern
    # SBC-4 4.29.1: a WRITE ATOMIC waits until the held read's data has been sent.
    atomic = bytes.fromhex("9c 00 0000000000000010 0000 0008 00 00")
    done: list[int] = []

    async def write_atomic() -> None:
        done.append((await run(target, atomic, bytes(4096))).status)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write_atomic)
        await trio.testing.wait_all_tasks_blocked()
        assert not done
        assert os.pread(backend.fileno(), 4096, offset) == pattern
        hold.release()
        hold.release()  # idempotent
    assert done == [Status.GOOD]
    before += 1
    span = target.read_span(nexus, 1, read16, 4096)
    assert span is not None and span[1] == 4096
    span[2].release()
    assert target.statistics()["commands"] == before + 2
    for lun, cdb, n in [
        (0, bytes.fromhex("28 20 00000010 00 0008 00"), 4096),  # RDPROTECT
        (0, bytes.fromhex("28 00 000007ff 00 0002 00"), 1024),  # beyond the last LBA
        (0, read10, 2048),  # EDTL shorter than the transfer
        (7, read10, 4096),  # no LU
    ]:
        assert target.read_span(nexus, lun, cdb, n) is None, cdb.hex()
    # Not in the page cache: the full path reads it (in a worker thread).
    fd = backend.fileno()
    os.fdatasync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    assert target.read_span(nexus, 0, read10, 4096) is None
    assert target.statistics()["commands"] == before + 2


def test_sbc3_backend_cached_tells_page_cache_residency(tmp_path: Path) -> None:
    b = FileBackend.create(tmp_path / "lun.img", 8 << 20, block_size=512)
    try:
        os.pread(b.fileno(), 1 << 20, 1 << 20)
        assert b.cached(2048, 2048) and b.cached(2049, 8)
        os.posix_fadvise(b.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        assert not b.cached(2048, 2048)
        assert not b.cached(0, 0)
    finally:
        b.close()
    assert not b.cached(0, 8)  # closed
