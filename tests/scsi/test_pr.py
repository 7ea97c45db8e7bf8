"""SPC-4 5.9 persistent reservations, through PERSISTENT RESERVE IN/OUT CDBs."""

from __future__ import annotations

import struct

from scsi import Nexus, Target
from scsi.pr import PersistentReservations, PrType, encode_transport_id
from scsi.sense import Status

from .conftest import INI_A, INI_A2, INI_B, data, ready, run, sense

KEY_A = 0x1111111111111111
KEY_B = 0x2222222222222222

READ10 = bytes.fromhex("28 00 00000000 00 0001 00")
WRITE10 = bytes.fromhex("2a 00 00000000 00 0001 00")


def prout(sa: int, type_: int = 0, length: int = 24) -> bytes:
    return bytes((0x5F, sa, type_, 0, 0)) + struct.pack(">I", length) + b"\x00"


def params(key: int, sa_key: int, flags: int = 0) -> bytes:
    return struct.pack(">QQIBBH", key, sa_key, 0, flags, 0, 0)


def prin(sa: int, alloc: int = 1024) -> bytes:
    return bytes((0x5E, sa, 0, 0, 0, 0, 0)) + struct.pack(">H", alloc) + b"\x00"


async def register(t: Target, nexus: Nexus, key: int) -> None:
    r = await run(t, prout(0x06), params(0, key), nexus=nexus)  # REGISTER AND IGNORE
    assert r.status == Status.GOOD, r


async def setup(t: Target) -> None:
    for n in (INI_A, INI_B, INI_A2):
        await ready(t, n)


async def test_spc4_6_15_2_read_keys(target: Target) -> None:
    await setup(target)
    await register(target, INI_A, KEY_A)
    await register(target, INI_B, KEY_B)
    d = data(await run(target, prin(0)))
    assert d == bytes.fromhex("00000002 00000010 1111111111111111 2222222222222222")
    # Truncated to the allocation length.
    assert data(await run(target, prin(0, 8))) == bytes.fromhex("00000002 00000010")


async def test_spc4_6_16_2_register_with_wrong_key_conflicts(target: Target) -> None:
    await setup(target)
    r = await run(target, prout(0x00), params(5, KEY_A))
    assert r.status == Status.RESERVATION_CONFLICT
    assert (await run(target, prout(0x00), params(0, KEY_A))).status == Status.GOOD
    r = await run(target, prout(0x00), params(KEY_B, 1))
    assert r.status == Status.RESERVATION_CONFLICT
    # Unregister with SERVICE ACTION RESERVATION KEY 0.
    assert (await run(target, prout(0x00), params(KEY_A, 0))).status == Status.GOOD
    assert data(await run(target, prin(0))) == bytes.fromhex("00000002 00000000")


async def test_spc4_6_16_parameter_list_length_must_be_24(target: Target) -> None:
    await setup(target)
    r = await run(target, prout(0x06, length=20), params(0, KEY_A)[:20])
    assert sense(r) == (0x5, 0x1A, 0x00)


async def test_spc4_5_9_7_reserve_write_exclusive(target: Target) -> None:
    await setup(target)
    await register(target, INI_A, KEY_A)
    await register(target, INI_B, KEY_B)
    assert (await run(target, prout(0x01, 0x01), params(KEY_A, 0))).status == Status.GOOD
    d = data(await run(target, prin(1)))
    assert d == bytes.fromhex("00000002 00000010 1111111111111111 00000000 00 01 0000")
    # Write Exclusive: others read but do not write, registered or not.
    assert (await run(target, READ10, nexus=INI_B)).status == Status.GOOD
    r = await run(target, WRITE10, bytes(512), nexus=INI_B)
    assert r.status == Status.RESERVATION_CONFLICT
    assert (await run(target, WRITE10, bytes(512))).status == Status.GOOD
    # Another path of the holder's initiator is another I_T nexus.
    assert (await run(target, WRITE10, bytes(512), nexus=INI_A2)).status == 0x18
    # Reserving again with another type conflicts; release with the wrong type is 26/04.
    r = await run(target, prout(0x01, 0x03), params(KEY_A, 0))
    assert r.status == Status.RESERVATION_CONFLICT
    r = await run(target, prout(0x02, 0x03), params(KEY_A, 0))
    assert sense(r) == (0x5, 0x26, 0x04)
    assert (await run(target, prout(0x02, 0x01), params(KEY_A, 0))).status == Status.GOOD
    assert (await run(target, WRITE10, bytes(512), nexus=INI_B)).status == Status.GOOD


async def test_spc4_5_9_1_exclusive_access_registrants_only(target: Target) -> None:
    await setup(target)
    await register(target, INI_A, KEY_A)
    await register(target, INI_B, KEY_B)
    assert (await run(target, prout(0x01, 0x06), params(KEY_A, 0))).status == Status.GOOD
    assert (await run(target, READ10, nexus=INI_B)).status == Status.GOOD
    r = await run(target, READ10, nexus=INI_A2)  # not registered on port 2
    assert r.status == Status.RESERVATION_CONFLICT


async def test_spc4_5_9_11_4_preempt(target: Target) -> None:
    await setup(target)
    await register(target, INI_A, KEY_A)
    await register(target, INI_B, KEY_B)
    await run(target, prout(0x01, 0x03), params(KEY_A, 0))
    r = await run(target, prout(0x04, 0x03), params(KEY_B, KEY_A), nexus=INI_B)
    assert r.status == Status.GOOD
    d = data(await run(target, prin(1), nexus=INI_B))
    assert d[8:16] == struct.pack(">Q", KEY_B) and d[21] == 0x03
    # The preempted nexus hears REGISTRATIONS PREEMPTED, then conflicts.
    assert sense(await run(target, bytes(6))) == (0x6, 0x2A, 0x05)
    assert (await run(target, READ10)).status == Status.RESERVATION_CONFLICT
    # Preempting a key nobody holds conflicts.
    r = await run(target, prout(0x04, 0x03), params(KEY_B, 0x99), nexus=INI_B)
    assert r.status == Status.RESERVATION_CONFLICT


async def test_spc4_5_9_11_5_clear(target: Target) -> None:
    await setup(target)
    await register(target, INI_A, KEY_A)
    await register(target, INI_B, KEY_B)
    await run(target, prout(0x01, 0x01), params(KEY_A, 0))
    assert (await run(target, prout(0x03), params(KEY_B, 0), nexus=INI_B)).status == 0
    assert data(await run(target, prin(1), nexus=INI_B)) == bytes.fromhex("00000003 00000000")
    assert sense(await run(target, bytes(6))) == (0x6, 0x2A, 0x03)


async def test_spc4_6_15_4_report_capabilities(target: Target) -> None:
    await setup(target)
    d = data(await run(target, prin(2)))
    assert d == bytes.fromhex("0008 15 80 ea 01 0000")


async def test_spc4_6_15_1_invalid_service_action(target: Target) -> None:
    await setup(target)
    assert sense(await run(target, prin(4))) == (0x5, 0x24, 0x00)


async def test_spc4_5_9_7_all_registrants(target: Target) -> None:
    await setup(target)
    await register(target, INI_A, KEY_A)
    await register(target, INI_B, KEY_B)
    await run(target, prout(0x01, 0x07), params(KEY_A, 0))
    assert (await run(target, WRITE10, bytes(512), nexus=INI_B)).status == Status.GOOD
    assert (await run(target, WRITE10, bytes(512), nexus=INI_A2)).status == 0x18
    # The holder unregisters: the reservation stays while registrants remain.
    await run(target, prout(0x00), params(KEY_A, 0))
    d = data(await run(target, prin(1), nexus=INI_B))
    assert d[4:8] == b"\x00\x00\x00\x10" and d[8:16] == bytes(8) and d[21] == 0x07


async def test_spc4_6_15_5_read_full_status_and_all_tg_pt(target: Target) -> None:
    await setup(target)
    r = await run(target, prout(0x06), params(0, KEY_A, flags=0x04))  # ALL_TG_PT
    assert r.status == Status.GOOD
    d = data(await run(target, prin(3)))
    _gen, length = struct.unpack(">II", d[:8])
    assert length == len(d) - 8
    tid = encode_transport_id(INI_A.initiator_port)
    first = d[8 : 8 + 24 + len(tid)]
    assert first[:8] == struct.pack(">Q", KEY_A)
    assert first[12] == 0x02  # ALL_TG_PT
    assert first[18:20] == b"\x00\x01"  # RELATIVE TARGET PORT IDENTIFIER
    assert first[24:] == tid
    assert tid[0] == 0x45  # FORMAT CODE 01b, iSCSI
    # Registered on port 2 as well.
    assert (await run(target, WRITE10, bytes(512), nexus=INI_A2)).status == Status.GOOD


async def test_spc4_5_9_8_register_and_move(target: Target) -> None:
    await setup(target)
    await register(target, INI_A, KEY_A)
    await run(target, prout(0x01, 0x01), params(KEY_A, 0))
    tid = encode_transport_id(INI_B.initiator_port)
    plist = struct.pack(">QQBBHI", KEY_A, KEY_B, 0, 0x02, 1, len(tid)) + tid  # UNREG
    r = await run(target, prout(0x07, 0x01, len(plist)), plist)
    assert r.status == Status.GOOD, r
    d = data(await run(target, prin(1), nexus=INI_B))
    assert d[8:16] == struct.pack(">Q", KEY_B)
    assert (await run(target, WRITE10, bytes(512), nexus=INI_B)).status == Status.GOOD
    assert (await run(target, WRITE10, bytes(512))).status == Status.RESERVATION_CONFLICT


def test_pr_state_round_trips_through_dict() -> None:
    pr = PersistentReservations()
    pr.registrations.clear()
    from scsi.pr import PrOutParams

    pr.out(("i,i,0x1", 1), 6, 0, 0, PrOutParams(0, 7, False, False, True))
    pr.out(("i,i,0x1", 1), 1, 0, 3, PrOutParams(7, 0, False, False, True))
    again = PersistentReservations.from_dict(pr.to_dict())
    assert again.to_dict() == pr.to_dict()
    assert again.type == PrType.EXCLUSIVE_ACCESS and again.holder == ("i,i,0x1", 1)
