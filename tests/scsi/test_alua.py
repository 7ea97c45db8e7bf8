"""SPC-4 5.15 asymmetric logical unit access."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from scsi import AluaState, Target
from scsi.alua import TargetPortGroup, check_access, encode_rtpg, parse_stpg
from scsi.sense import SenseError, Status

from .conftest import INI_A, INI_A2, INI_B, data, ready, run, sense

RTPG_EXT = bytes.fromhex("a3 2a 00000000 00000100 00 00")
READ10 = bytes.fromhex("28 00 00000000 00 0001 00")


def test_spc4_6_37_rtpg_length_only_format() -> None:
    g1 = TargetPortGroup(1, [1, 3], preferred=True)
    g2 = TargetPortGroup(2, [2])
    d = encode_rtpg([(g1, AluaState.ACTIVE_OPTIMIZED), (g2, AluaState.STANDBY)], extended=False)
    assert d == bytes.fromhex(
        "0000001c"  # RETURN DATA LENGTH
        "80 cf 0001 00 00 00 02"  # PREF|AO, T O U S AN AO supported, TPG 1, 2 ports
        "0000 0001 0000 0003"
        "02 cf 0002 00 00 00 01"  # standby, TPG 2, 1 port
        "0000 0002"
    )


def test_spc4_6_37_rtpg_extended_header() -> None:
    d = encode_rtpg(
        [(TargetPortGroup(1, [1]), AluaState.TRANSITIONING)],
        extended=True,
        implicit_transition_secs=10,
    )
    assert d[:8] == bytes.fromhex("00000010 10 0a 0000")
    assert d[8] == 0x0F


def test_spc4_6_45_stpg_parse() -> None:
    assert parse_stpg(bytes.fromhex("00000000 01 00 0002 00 00 0001")) == [
        (2, AluaState.ACTIVE_NON_OPTIMIZED),
        (1, AluaState.ACTIVE_OPTIMIZED),
    ]
    with pytest.raises(SenseError) as e:
        parse_stpg(bytes.fromhex("00000000 0f 00 0002"))  # transitioning may not be asked for
    assert (e.value.asc, e.value.field_pointer) == (0x26, 4)
    with pytest.raises(SenseError):
        parse_stpg(bytes.fromhex("00000000 01 00"))


@pytest.mark.parametrize(
    ("state", "ascq", "allowed", "refused"),
    [
        (AluaState.STANDBY, 0x0B, [0x12, 0x25, 0x5E, 0x1A], [0x28, 0x2A, 0x00]),
        (AluaState.UNAVAILABLE, 0x0C, [0x12, 0xA0, 0x03], [0x25, 0x28, 0x5E]),
        (AluaState.TRANSITIONING, 0x0A, [0x12, 0xA0], [0x25, 0xA4]),
    ],
)
def test_spc4_5_15_2_state_filters(
    state: AluaState, ascq: int, allowed: list[int], refused: list[int]
) -> None:
    for op in allowed:
        check_access(state, bytes((op,)) + bytes(15))
    for op in refused:
        cdb = bytes((op, 0x0A)) + bytes(14)
        with pytest.raises(SenseError) as e:
            check_access(state, cdb)
        assert (e.value.key, e.value.asc, e.value.ascq) == (0x2, 0x04, ascq)
    # RTPG is allowed in every state.
    check_access(state, bytes.fromhex("a3 0a") + bytes(10))


async def test_spc4_5_15_2_7_state_change_unit_attention(target: Target) -> None:
    for n in (INI_A, INI_B, INI_A2):
        await ready(target, n)
    target.set_alua_state(2, "standby")
    # Every I_T nexus hears ASYMMETRIC ACCESS STATE CHANGED.
    for n in (INI_A, INI_B, INI_A2):
        assert sense(await run(target, bytes(6), nexus=n)) == (0x6, 0x2A, 0x06)
    # Port 2 (group 2) is standby now.
    assert sense(await run(target, READ10, nexus=INI_A2)) == (0x2, 0x04, 0x0B)
    assert (await run(target, READ10)).status == Status.GOOD
    d = data(await run(target, RTPG_EXT, nexus=INI_A2))
    assert d[8] & 0x0F == 0x0 and d[20] & 0x0F == 0x2
    assert d[25] == 2  # STATUS CODE: implicit change


async def test_spc4_6_45_set_target_port_groups(target: Target) -> None:
    for n in (INI_A, INI_B):
        await ready(target, n)
    plist = bytes.fromhex("00000000 03 00 0002")
    cdb = bytes.fromhex("a4 0a 00000000 00000008 00 00")
    assert (await run(target, cdb, plist)).status == Status.GOOD
    assert target.port_groups[2].state == AluaState.UNAVAILABLE
    # No unit attention for the nexus that asked; the others get one.
    assert (await run(target, bytes(6))).status == Status.GOOD
    assert sense(await run(target, bytes(6), nexus=INI_B)) == (0x6, 0x2A, 0x06)
    d = data(await run(target, RTPG_EXT))
    assert d[20] & 0x0F == 0x3 and d[25] == 1  # altered by SET TARGET PORT GROUPS
    # An unknown group is an invalid parameter.
    r = await run(target, cdb, bytes.fromhex("00000000 00 00 0009"))
    assert sense(r) == (0x5, 0x26, 0x00)


async def test_alua_state_per_lun(target: Target) -> None:
    await ready(target, INI_A2)
    await ready(target, INI_A2, lun=1)
    target.set_alua_state(2, AluaState.UNAVAILABLE, lun=1)
    await ready(target, INI_A2, lun=0)
    assert (await run(target, READ10, nexus=INI_A2, lun=0)).status == Status.GOOD
    assert sense(await run(target, READ10, nexus=INI_A2, lun=1))[0] == 0x6
    assert sense(await run(target, READ10, nexus=INI_A2, lun=1)) == (0x2, 0x04, 0x0C)


async def test_non_optimized_delay(target: Target, autojump_clock: trio.testing.MockClock) -> None:
    target.non_optimized_delay = 0.1
    await ready(target, INI_A2)
    target.set_alua_state(2, AluaState.ACTIVE_NON_OPTIMIZED)
    await ready(target, INI_A2)
    await ready(target, INI_A)
    t0 = trio.current_time()
    assert (await run(target, READ10, nexus=INI_A2)).status == Status.GOOD
    assert trio.current_time() - t0 >= 0.1
    t0 = trio.current_time()
    assert (await run(target, READ10, nexus=INI_A)).status == Status.GOOD
    assert trio.current_time() - t0 < 0.1


async def test_spc4_5_15_2_6_implicit_transition(
    target: Target, autojump_clock: trio.testing.MockClock
) -> None:
    target.implicit_transition_secs = 2
    await ready(target, INI_A2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(target.transition_alua_state, 2, "ano")
        await trio.sleep(1)
        assert sense(await run(target, bytes(6), nexus=INI_A2)) == (0x6, 0x2A, 0x06)
        assert sense(await run(target, READ10, nexus=INI_A2)) == (0x2, 0x04, 0x0A)
        d = data(await run(target, RTPG_EXT, nexus=INI_A2))
        assert d[5] == 2 and d[20] & 0x0F == 0xF
    await ready(target, INI_A2)
    assert (await run(target, READ10, nexus=INI_A2)).status == Status.GOOD
    assert target.port_groups[2].state == AluaState.ACTIVE_NON_OPTIMIZED
