"""Commands and VPD pages served by other subsystems (the copy manager)."""

from __future__ import annotations

import pytest

from scsi import Nexus, ScsiResult, Target
from scsi.commands import Context, Extension
from scsi.lun import LogicalUnit
from scsi.sense import Status

from .conftest import INI_B, data, ready, run, sense

XCOPY = bytes.fromhex("83 00 00000000 00000000 0000 0020 00 00")  # LID1, 32-byte list


async def xcopy(ctx: Context) -> ScsiResult:
    assert ctx.data_out is not None
    return ScsiResult(Status.GOOD, bytes(ctx.data_out[:4]))


def vpd_8f(lu: LogicalUnit, nexus: Nexus) -> bytes:
    return bytes.fromhex("0000 0004 00000000")


@pytest.fixture
def copy_target(target: Target) -> Target:
    target.add_command(
        0x83, 0x00, Extension(xcopy, bytes.fromhex("00 1f") + bytes(12) + b"\x00\x07")
    )
    target.add_vpd_page(0x8F, vpd_8f, third_party_copy=True)
    return target


async def test_spc4_6_4_2_three_pc_and_vpd_8f(copy_target: Target) -> None:
    t = copy_target
    assert data(await run(t, bytes.fromhex("12 00 00 0024 00")))[5] == 0x38
    pages = data(await run(t, bytes.fromhex("12 01 00 00ff 00")))[4:]
    assert pages == bytes.fromhex("00 80 83 86 8f b0 b1 b2")
    assert data(await run(t, bytes.fromhex("12 01 8f 00ff 00"))) == bytes.fromhex(
        "00 8f 0008 0000 0004 00000000"
    )


async def test_extension_command_dispatch_and_rsoc(copy_target: Target) -> None:
    t = copy_target
    await ready(t)
    assert t.data_out_length(XCOPY, 0) == 32
    r = await run(t, XCOPY, bytes(range(32)))
    assert data(r) == bytes(range(4))
    # Other service actions of the opcode are invalid fields, not invalid opcodes.
    r = await run(t, bytes.fromhex("83 05 00000000 00000000 0000 0020 00 00"), bytes(32))
    assert sense(r) == (0x5, 0x24, 0x00)
    d = data(await run(t, bytes.fromhex("a3 0c 02 83 0000 00000100 00 00")))
    assert d[1] == 0x03 and d[4] == 0x83
    d = data(await run(t, bytes.fromhex("a3 0c 00 00 0000 00010000 00 00")))
    assert any(d[i] == 0x83 for i in range(4, len(d), 8))


async def test_extension_obeys_reservations(copy_target: Target) -> None:
    t = copy_target
    await ready(t)
    await ready(t, INI_B)
    assert (await run(t, bytes.fromhex("16 00 00 00 00 00"))).status == Status.GOOD
    r = await run(t, XCOPY, bytes(32), nexus=INI_B)
    assert r.status == Status.RESERVATION_CONFLICT


def test_extension_must_agree_on_service_actions(target: Target) -> None:
    with pytest.raises(ValueError):
        target.add_command(0x28, 0x01, Extension(xcopy, bytes(10)))
    with pytest.raises(ValueError):
        target.add_command(0x9E, None, Extension(xcopy, bytes(16)))
    target.add_command(0x9E, 0x15, Extension(xcopy, bytes(16)))  # a new SA of an SA opcode
