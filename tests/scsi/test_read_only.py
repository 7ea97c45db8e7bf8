"""A write-protected (read-only) logical unit: SBC-3 4.x write protection, the WP bit of
the MODE SENSE device-specific parameter (SBC-3 6.4.1) and DATA PROTECT sense."""

from __future__ import annotations

from scsi import Target
from scsi.sense import Status

from .conftest import data, ready, run, sense

WRITES = [
    bytes.fromhex("2a 00 00000000 00 0001 00"),  # WRITE(10)
    bytes.fromhex("aa 00 00000000 00000001 00 00"),  # WRITE(12)
    bytes.fromhex("8a 00 0000000000000000 00000001 00 00"),  # WRITE(16)
    bytes.fromhex("2e 00 00000000 00 0001 00"),  # WRITE AND VERIFY(10)
    bytes.fromhex("41 00 00000000 00 0001 00"),  # WRITE SAME(10)
    bytes.fromhex("41 08 00000000 00 0001 00"),  # WRITE SAME(10) UNMAP
    bytes.fromhex("93 08 0000000000000000 00000001 00 00"),  # WRITE SAME(16) UNMAP
    bytes.fromhex("89 00 0000000000000000 000000 01 00 00"),  # COMPARE AND WRITE
]


async def test_sbc3_6_4_1_mode_sense_reports_wp(target: Target) -> None:
    await ready(target)
    assert data(await run(target, bytes.fromhex("1a 00 3f 00 ff 00")))[2] & 0x80 == 0
    target.luns[0].read_only = True
    d = data(await run(target, bytes.fromhex("1a 00 3f 00 ff 00")))
    assert d[2] == 0x90  # WP | DPOFUA
    d = data(await run(target, bytes.fromhex("5a 00 3f 00 00 00 00 00 ff 00")))
    assert d[3] == 0x90


async def test_sbc3_4_write_protected_unit_refuses_writes(target: Target) -> None:
    await ready(target)
    target.luns[0].read_only = True
    for cdb in WRITES:
        n = 1024 if cdb[0] == 0x89 else 512
        r = await run(target, cdb, bytes(n))
        assert r.sense[:3] == bytes.fromhex("70 00 07"), cdb.hex()
        assert sense(r) == (0x7, 0x27, 0x00), cdb.hex()
    unmap = bytes.fromhex("0018 0010 00000000 0000000000000000 00000001 00000000")
    r = await run(target, bytes.fromhex("42 00 00000000 00 0018 00"), unmap)
    assert sense(r) == (0x7, 0x27, 0x00)
    # Reads still work.
    r = await run(target, bytes.fromhex("28 00 00000000 00 0001 00"))
    assert r.status == Status.GOOD
