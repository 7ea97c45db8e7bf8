"""SPC-4 commands of the block target: byte-exact CDB and response vectors."""

from __future__ import annotations

import struct
from pathlib import Path

from scsi import LogicalUnit, Nexus, Target
from scsi.backend import FileBackend
from scsi.sense import Status

from .conftest import INI_A, INI_B, data, ready, run, sense


async def test_sam5_5_14_power_on_unit_attention_first(target: Target) -> None:
    r = await run(target, bytes(6))  # TEST UNIT READY
    assert sense(r) == (0x6, 0x29, 0x00)
    r = await run(target, bytes(6))
    assert r.status == Status.GOOD


async def test_spc4_6_4_2_standard_inquiry(target: Target) -> None:
    cdb = bytes.fromhex("12 00 00 0060 00")  # INQUIRY, alloc 96
    d = data(await run(target, cdb))
    assert len(d) == 96
    assert d[0] == 0x00  # connected, direct access block device
    assert d[2] == 0x06  # SPC-4
    assert d[3] == 0x12  # HISUP, response data format 2
    assert d[4] == 91  # additional length
    assert d[5] == 0x38  # TPGS: implicit and explicit; 3PC (the copy manager)
    assert d[6] == 0x10  # MULTIP
    assert d[7] == 0x02  # CMDQUE
    assert d[8:16] == b"VMSTOR  "
    assert d[58:66] == bytes.fromhex("00a0 0960 0460 04c0")  # SAM-5 iSCSI SPC-4 SBC-3


async def test_spc4_6_4_1_inquiry_is_not_blocked_by_unit_attention(target: Target) -> None:
    d = data(await run(target, bytes.fromhex("12 00 00 0024 00")))
    assert len(d) == 36
    assert sense(await run(target, bytes(6)))[0] == 0x6


async def test_spc4_6_4_1_page_code_without_evpd_is_invalid(target: Target) -> None:
    r = await run(target, bytes.fromhex("12 00 80 00ff 00"))
    assert sense(r) == (0x5, 0x24, 0x00)
    assert r.sense[15:18] == bytes.fromhex("c00002")


async def test_spc4_7_8_5_supported_vpd_pages(target: Target) -> None:
    d = data(await run(target, bytes.fromhex("12 01 00 00ff 00")))
    assert d == bytes.fromhex("00 00 0008 00 80 83 86 8f b0 b1 b2")


async def test_spc4_7_8_6_device_identification(target: Target) -> None:
    d = data(await run(target, bytes.fromhex("12 01 83 0400 00")))
    assert d[1] == 0x83
    assert struct.unpack(">H", d[2:4])[0] == len(d) - 4
    lu = target.luns[0]
    # NAA 6 IEEE registered extended, LU association, binary.
    assert d[4:8] == bytes.fromhex("01 03 00 10")
    assert d[8:24] == lu.identity.naa_bytes()
    assert d[8] >> 4 == 0x6
    # Walk to the relative target port and target port group designators.
    off, found = 4, {}
    while off < len(d):
        b1, length = d[off + 1], d[off + 3]
        found[(b1 >> 4) & 3, b1 & 0x0F] = d[off : off + 4 + length]
        off += 4 + length
    assert found[1, 4] == bytes.fromhex("51 94 00 04 0000 0001")  # RTPI 1, iSCSI, PIV
    assert found[1, 5] == bytes.fromhex("51 95 00 04 0000 0001")  # TPG 1
    name = found[1, 8][4:].rstrip(b"\0")
    assert name == b"iqn.2026-11.org.vmstor:unit,t,0x0001"
    assert found[2, 8][4:].rstrip(b"\0") == b"iqn.2026-11.org.vmstor:unit"


async def test_spc4_7_8_6_naa_is_the_same_on_every_path(target: Target) -> None:
    other = Nexus(INI_A.initiator, INI_A.initiator_port, 2, 2)
    a = data(await run(target, bytes.fromhex("12 01 83 0400 00")))
    b = data(await run(target, bytes.fromhex("12 01 83 0400 00"), nexus=other))
    assert a[4:24] == b[4:24]
    assert a != b  # the target port designators differ


async def test_spc4_6_33_report_luns(target: Target) -> None:
    cdb = bytes.fromhex("a0 00 00 000000 00000100 00 00")
    d = data(await run(target, cdb))
    assert d == bytes.fromhex("00000010 00000000 0000000000000000 0001000000000000")


async def test_spc4_6_33_report_luns_allocation_length_below_4(target: Target) -> None:
    r = await run(target, bytes.fromhex("a0 00 00 000000 00000003 00 00"))
    assert sense(r) == (0x5, 0x24, 0x00)


async def test_spc4_6_33_reported_luns_data_has_changed(target: Target, tmp_path: Path) -> None:
    await ready(target)
    be = FileBackend.create(tmp_path / "new.img", 1 << 20)
    target.add_lun(7, LogicalUnit("new", be))
    assert sense(await run(target, bytes(6))) == (0x6, 0x3F, 0x0E)
    await ready(target)
    # REPORT LUNS clears the unit attention on every LU of the nexus.
    target.remove_lun(7)
    d = data(await run(target, bytes.fromhex("a0 00 00 000000 00000100 00 00")))
    assert len(d) == 8 + 16
    assert (await run(target, bytes(6), lun=1)).status == Status.CHECK_CONDITION  # 29/00 first
    assert (await run(target, bytes(6), lun=1)).status == Status.GOOD
    be.close()


async def test_spc4_4_5_2_lun_not_supported(target: Target) -> None:
    assert sense(await run(target, bytes(6), lun=5)) == (0x5, 0x25, 0x00)
    # INQUIRY to a LUN without an LU: peripheral qualifier 011b.
    d = data(await run(target, bytes.fromhex("12 00 00 0024 00"), lun=5))
    assert d[0] == 0x7F


async def test_lun_masking_hides_luns(target: Target) -> None:
    target.set_masking(lambda n: {1} if n.initiator.endswith(":b") else None)
    d = data(await run(target, bytes.fromhex("a0 00 00 000000 00000100 00 00"), nexus=INI_B))
    assert d == bytes.fromhex("00000008 00000000 0001000000000000")
    assert sense(await run(target, bytes(6), nexus=INI_B, lun=0)) == (0x5, 0x25, 0x00)


async def test_spc4_6_1_invalid_operation_code(target: Target) -> None:
    await ready(target)
    r = await run(target, bytes.fromhex("ff 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"))
    assert sense(r) == (0x5, 0x20, 0x00)


async def test_sam5_5_2_naca_is_refused(target: Target) -> None:
    await ready(target)
    assert sense(await run(target, bytes.fromhex("00 00 00 00 00 04"))) == (0x5, 0x24, 0x00)


async def test_spc4_6_39_request_sense_returns_unit_attention(target: Target) -> None:
    d = data(await run(target, bytes.fromhex("03 00 00 00 12 00")))
    assert d[2] == 0x06 and d[12:14] == b"\x29\x00"
    d = data(await run(target, bytes.fromhex("03 00 00 00 12 00")))
    assert d[2] == 0x00 and d[12:14] == b"\x00\x00"


async def test_spc4_6_11_mode_sense_6_caching_page(target: Target) -> None:
    await ready(target)
    d = data(await run(target, bytes.fromhex("1a 00 08 00 ff 00")))
    # header: length, medium type, DPOFUA, block descriptor length 8
    assert d[:4] == bytes((len(d) - 1, 0, 0x10, 8))
    assert d[4:12] == struct.pack(">II", 2048, 512)
    assert d[12:14] == b"\x08\x12"
    assert d[14] & 0x04  # WCE


async def test_spc4_6_11_mode_sense_all_pages_dbd(target: Target) -> None:
    await ready(target)
    d = data(await run(target, bytes.fromhex("1a 08 3f 00 ff 00")))
    assert d[3] == 0
    codes = []
    off = 4
    while off < len(d):
        codes.append(d[off] & 0x3F)
        off += 2 + d[off + 1]
    assert codes == [0x01, 0x02, 0x08, 0x0A, 0x1C]


async def test_spc4_6_12_mode_sense_10_long_lba(target: Target) -> None:
    await ready(target)
    d = data(await run(target, bytes.fromhex("5a 10 0a 00 000000 0100 00")))
    assert d[4] == 1 and d[6:8] == b"\x00\x10"
    assert d[8:24] == struct.pack(">QII", 2048, 0, 512)


async def test_spc4_6_11_saved_values_not_supported(target: Target) -> None:
    await ready(target)
    assert sense(await run(target, bytes.fromhex("1a 00 c8 00 ff 00"))) == (0x5, 0x39, 0x00)


async def test_spc4_7_5_8_mode_select_swp_write_protects(target: Target) -> None:
    await ready(target)
    await ready(target, INI_B)
    page = bytearray(data(await run(target, bytes.fromhex("1a 08 0a 00 ff 00")))[4:])
    page[4] |= 0x08  # SWP
    params = bytes(4) + bytes(page)
    cdb = bytes((0x15, 0x10, 0, 0, len(params), 0))
    assert (await run(target, cdb, params)).status == Status.GOOD
    r = await run(target, bytes.fromhex("2a 00 00000000 00 0001 00"), bytes(512))
    assert sense(r) == (0x7, 0x27, 0x00)
    # The other nexus hears MODE PARAMETERS CHANGED.
    assert sense(await run(target, bytes(6), nexus=INI_B)) == (0x6, 0x2A, 0x01)
    d = data(await run(target, bytes.fromhex("1a 00 3f 00 ff 00")))
    assert d[2] & 0x80  # WP


async def test_spc4_7_5_mode_select_unchangeable_bit(target: Target) -> None:
    await ready(target)
    page = bytearray(data(await run(target, bytes.fromhex("1a 08 0a 00 ff 00")))[4:])
    page[2] |= 0x04  # D_SENSE is not changeable
    params = bytes(4) + bytes(page)
    r = await run(target, bytes((0x15, 0x10, 0, 0, len(params), 0)), params)
    assert sense(r) == (0x5, 0x26, 0x00)
    assert r.sense[15:18] == bytes.fromhex("800006")


async def test_spc4_6_35_report_supported_opcodes_one_command(target: Target) -> None:
    await ready(target)
    # REPORTING OPTIONS 001b, READ(10)
    d = data(await run(target, bytes.fromhex("a3 0c 01 28 0000 00000100 00 00")))
    assert d[:4] == bytes.fromhex("00 03 000a")
    assert d[4:] == bytes.fromhex("28 f8 ffffffff 3f ffff 07")
    # An SA command asked for without its service action is invalid.
    r = await run(target, bytes.fromhex("a3 0c 01 9e 0000 00000100 00 00"))
    assert sense(r) == (0x5, 0x24, 0x00)
    d = data(await run(target, bytes.fromhex("a3 0c 02 9e 0010 00000100 00 00")))
    assert d[1] == 0x03 and d[4:6] == b"\x9e\x1f"
    d = data(await run(target, bytes.fromhex("a3 0c 01 ee 0000 00000100 00 00")))
    assert d == bytes.fromhex("00 01 0000")


async def test_spc4_6_35_report_supported_opcodes_all_with_timeouts(target: Target) -> None:
    await ready(target)
    d = data(await run(target, bytes.fromhex("a3 0c 80 00 0000 00010000 00 00")))
    n = struct.unpack(">I", d[:4])[0]
    assert n == len(d) - 4 and n % 20 == 0
    ops = {(d[i], struct.unpack(">H", d[i + 2 : i + 4])[0]) for i in range(4, len(d), 20)}
    assert (0x28, 0) in ops and (0x9E, 0x10) in ops and (0x5F, 7) in ops
    assert d[4 + 5] & 0x02  # CTDP
    assert d[4 + 8 : 4 + 10] == b"\x00\x0a"


async def test_spc2_7_21_reserve6_conflicts_other_nexus(target: Target) -> None:
    await ready(target)
    await ready(target, INI_B)
    assert (await run(target, bytes.fromhex("16 00 00 00 00 00"))).status == Status.GOOD
    r = await run(target, bytes.fromhex("28 00 00000000 00 0001 00"), nexus=INI_B)
    assert r.status == Status.RESERVATION_CONFLICT and r.sense == b""
    assert (await run(target, bytes.fromhex("12 00 00 0024 00"), nexus=INI_B)).status == 0
    target.i_t_nexus_loss(INI_A)
    r = await run(target, bytes.fromhex("28 00 00000000 00 0001 00"), nexus=INI_B)
    assert r.status == Status.GOOD


async def test_sam5_7_7_lun_reset_unit_attention(target: Target) -> None:
    await ready(target)
    assert target.lun_reset(0)
    assert sense(await run(target, bytes(6))) == (0x6, 0x29, 0x03)
    assert not target.lun_reset(9)


async def test_statistics_and_to_dict(target: Target) -> None:
    await ready(target)
    stats = target.statistics()
    assert stats["commands"] == 2
    assert stats["check_conditions"] == 1
    d = target.to_dict()
    assert d["name"] == "iqn.2026-11.org.vmstor:unit"
    luns = d["luns"]
    assert isinstance(luns, dict) and set(luns) == {"0", "1"}


async def test_sbc3_6_5_3_block_limits_vpd(target: Target) -> None:
    d = data(await run(target, bytes.fromhex("12 01 b0 00ff 00")))
    assert d[:4] == bytes.fromhex("00 b0 003c")
    assert d[4] == 0x00  # WSNZ=0
    assert d[5] == 0xFF  # MAXIMUM COMPARE AND WRITE LENGTH
    assert struct.unpack(">I", d[8:12])[0] == (64 << 20) // 512  # MAXIMUM TRANSFER LENGTH
    assert struct.unpack(">I", d[20:24])[0] == 0xFFFFFFFF  # MAXIMUM UNMAP LBA COUNT
    assert struct.unpack(">I", d[24:28])[0] == 256  # MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
    assert struct.unpack(">Q", d[36:44])[0] == 1 << 24  # MAXIMUM WRITE SAME LENGTH


async def test_sbc3_6_5_4_logical_block_provisioning_vpd(target: Target) -> None:
    thin = data(await run(target, bytes.fromhex("12 01 b2 00ff 00")))
    assert thin == bytes.fromhex("00 b2 0004 00 e4 02 00")  # LBPU LBPWS LBPWS10 LBPRZ, thin
    thick = data(await run(target, bytes.fromhex("12 01 b2 00ff 00"), lun=1))
    assert thick == bytes.fromhex("00 b2 0004 00 00 00 00")


async def test_spc4_7_8_15_unit_serial_number(target: Target) -> None:
    d = data(await run(target, bytes.fromhex("12 01 80 00ff 00")))
    serial = target.luns[0].identity.serial.encode()
    assert d == bytes((0, 0x80, 0, len(serial))) + serial


def test_sam5_4_7_lun_coding() -> None:
    from scsi import decode_lun, encode_lun

    assert encode_lun(5) == bytes.fromhex("0005000000000000")  # peripheral device
    assert encode_lun(300) == bytes.fromhex("412c000000000000")  # flat space
    assert decode_lun(bytes.fromhex("412c000000000000")) == 300
    assert decode_lun(bytes.fromhex("0005000000000000")) == 5
    assert decode_lun(bytes.fromhex("0005000100000000")) == -1  # second level: not served
    assert decode_lun(bytes.fromhex("c000000000000000")) == -1  # extended addressing
