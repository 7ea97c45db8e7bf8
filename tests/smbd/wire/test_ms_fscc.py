"""[MS-FSCC] 2.4 file and 2.5 file-system information classes, FILETIME, and the
[MS-DTYP] 2.4.6 security descriptor builder. Vectors from smbclient 4.17 against Samba
(`allinfo`, `du`) where marked, the others laid out from the spec tables."""

from __future__ import annotations

import functools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbd.wire import fscc
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus
from tests.smbd.wire.wirecheck import fuzz, parses_or_parse_error


def test_filetime() -> None:
    assert fscc.unix_ns_to_filetime(0) == 116444736000000000
    assert fscc.filetime_to_unix_ns(116444736000000000) == 0
    ns = 1_700_000_000_123_456_700
    assert fscc.filetime_to_unix_ns(fscc.unix_ns_to_filetime(ns)) == ns
    assert fscc.unix_ns_to_filetime(-(10**20)) == 0


def test_fs_size_information_matches_samba() -> None:
    # smbclient `du`: 264212084 blocks of 1024, 83285396 available (Samba reports 1 KiB units
    # as SectorsPerAllocationUnit 2 x BytesPerSector 512).
    assert fscc.pack_fs_size_info(264212084, 83285396, 2, 512) == bytes.fromhex(
        "748ebf0f00000000"  # TotalAllocationUnits
        "94d5f60400000000"  # AvailableAllocationUnits
        "02000000"  # SectorsPerAllocationUnit
        "00020000"  # BytesPerSector
    )


def test_fs_classes_layouts() -> None:
    # smbclient `volume` against Samba: FileFsVolumeInformation of [share].
    vol = fscc.pack_fs_volume_info(0x01DD7E2F33D27714, 0x93F83C3D, "share")
    assert vol == bytes.fromhex(
        "1477d2332f7edd01"  # VolumeCreationTime
        "3d3cf893"  # VolumeSerialNumber
        "0a000000"  # VolumeLabelLength
        "00"  # SupportsObjects
        "00"  # Reserved
        "73006800610072006500"  # "share"
    )
    assert fscc.pack_fs_device_info() == bytes.fromhex("0700000020000000")
    attrs = fscc.FsAttributes.CASE_SENSITIVE_SEARCH | fscc.FsAttributes.CASE_PRESERVED_NAMES
    assert fscc.pack_fs_attribute_info(attrs, 255, "NTFS") == bytes.fromhex(
        "03000000"  # FileSystemAttributes
        "ff000000"  # MaximumComponentNameLength
        "08000000"  # FileSystemNameLength
        "4e00540046005300"  # "NTFS"
    )
    assert len(fscc.pack_fs_full_size_info(1, 2, 3, 8, 512)) == 32
    assert len(fscc.pack_fs_object_id_info(bytes(16))) == 64
    assert fscc.pack_fs_sector_size_info() == bytes.fromhex(
        "00020000"  # LogicalBytesPerSector
        "00100000"  # PhysicalBytesPerSectorForAtomicity
        "00100000"  # PhysicalBytesPerSectorForPerformance
        "00100000"  # FileSystemEffectivePhysicalBytesPerSectorForAtomicity
        "03000000"  # Flags ALIGNED_DEVICE | PARTITION_ALIGNED_ON_DEVICE
        "00000000"  # ByteOffsetForSectorAlignment
        "00000000"  # ByteOffsetForPartitionAlignment
    )


def test_file_classes_layouts() -> None:
    assert len(fscc.pack_basic_info(fscc.BasicInfo(1, 2, 3, 4, 0x20))) == 40
    assert fscc.pack_standard_info(fscc.StandardInfo(4096, 10, 1, True, False)) == bytes.fromhex(
        "00100000000000000a000000000000000100000001000000"
    )
    net = fscc.pack_network_open_info(fscc.NetworkOpenInfo(1, 2, 3, 4, 4096, 10, 0x20))
    assert len(net) == 56 and net[48:] == bytes.fromhex("2000000000000000")
    assert fscc.pack_attribute_tag_info(0x10) == bytes.fromhex("1000000000000000")
    assert fscc.pack_name_info("\\a") == bytes.fromhex("040000005c006100")
    assert len(fscc.pack_compression_info(10)) == 16
    assert fscc.pack_file_id_info(7, 9) == struct.pack("<Q", 7) + (9).to_bytes(16, "little")
    assert fscc.pack_position_info(5) == struct.pack("<Q", 5)
    assert fscc.parse_position_info(struct.pack("<Q", 5)) == 5


def test_stream_information_matches_samba() -> None:
    # smbclient `allinfo a.bin`: one unnamed data stream.
    assert fscc.pack_stream_info([fscc.StreamEntry("::$DATA", 70000, 73728)]) == bytes.fromhex(
        "00000000"  # NextEntryOffset
        "0e000000"  # StreamNameLength 14
        "7011010000000000"  # StreamSize
        "0020010000000000"  # StreamAllocationSize
        "3a003a0024004400410054004100"  # "::$DATA"
    )
    streams = [fscc.StreamEntry("::$DATA", 1, 8), fscc.StreamEntry(":s:$DATA", 2, 8)]
    two = fscc.pack_stream_info(streams)
    assert struct.unpack_from("<I", two)[0] == 40  # 24 + 14 -> 40


def test_set_side_parsers() -> None:
    basic = fscc.pack_basic_info(fscc.BasicInfo(0, 0, 5, fscc.FILETIME_NO_CHANGE, 0x20))
    assert fscc.parse_basic_info(basic) == fscc.BasicInfo(0, 0, 5, 0, 0x20)
    assert fscc.parse_basic_info(basic[:36]) == fscc.BasicInfo(0, 0, 5, 0, 0x20)
    assert fscc.parse_end_of_file_info(struct.pack("<Q", 1 << 40)) == 1 << 40
    assert fscc.parse_allocation_info(struct.pack("<Q", 4096)) == 4096
    assert fscc.parse_disposition_info_ex(struct.pack("<I", 3)) == 3
    assert fscc.parse_mode_info(struct.pack("<I", 0x2)) == 2
    with pytest.raises(ParseError):
        fscc.parse_mode_info(struct.pack("<I", 0x1))
    with pytest.raises(ParseError):
        fscc.parse_end_of_file_info(struct.pack("<Q", 1 << 63))
    for parse, size in [
        (fscc.parse_basic_info, 40),
        (fscc.parse_end_of_file_info, 8),
        (fscc.parse_allocation_info, 8),
        (fscc.parse_disposition_info, 1),
        (fscc.parse_disposition_info_ex, 4),
        (fscc.parse_position_info, 8),
        (fscc.parse_mode_info, 4),
    ]:
        with pytest.raises(ParseError) as e:
            parse(bytes(size - 1 if size != 40 else 35))
        assert e.value.status == NTStatus.INFO_LENGTH_MISMATCH


def test_security_descriptor() -> None:
    sd = fscc.build_security_descriptor("S-1-5-21-1-2-3-1000", "S-1-5-21-1-2-3-513")
    assert sd[:20] == bytes.fromhex(
        "01"  # Revision
        "00"  # Sbz1
        "0480"  # Control SELF_RELATIVE | DACL_PRESENT
        "14000000"  # OffsetOwner 20
        "30000000"  # OffsetGroup 48 (owner SID: 8 + 5 * 4 bytes)
        "00000000"  # OffsetSacl
        "4c000000"  # OffsetDacl 76
    )
    assert sd[20:28] == bytes.fromhex("0105000000000005")  # S-1-5 with 5 sub-authorities
    assert sd[76:] == bytes.fromhex(
        "02"
        "00"
        "1c00"
        "0100"
        "0000"  # ACL revision 2, size 28, 1 ACE
        "00"
        "00"
        "1400"
        "ff011f00"  # ACCESS_ALLOWED, size 20, FILE_ALL_ACCESS
        "010100000000000100000000"  # S-1-1-0 Everyone
    )
    info = fscc.parse_security_descriptor(sd)
    assert info == fscc.SecurityDescriptorInfo(
        0x8004, "S-1-5-21-1-2-3-1000", "S-1-5-21-1-2-3-513", 1
    )
    only_owner = fscc.build_security_descriptor(
        "S-1-5-18", "S-1-5-18", security_information=fscc.OWNER_SECURITY_INFORMATION
    )
    assert fscc.parse_security_descriptor(only_owner) == fscc.SecurityDescriptorInfo(
        0x8000, "S-1-5-18", None, None
    )


def test_ea_chain() -> None:
    eas = [fscc.EaEntry(b"USER.A", b"1"), fscc.EaEntry(b"B", b"")]
    raw = fscc.pack_full_ea_info(eas)
    assert raw[:16] == bytes.fromhex(
        "10000000"  # NextEntryOffset 16
        "00"  # Flags
        "06"  # EaNameLength
        "0100"  # EaValueLength
        "555345522e4100"  # "USER.A\0"
        "31"  # value
    )
    assert fscc.parse_full_ea_info(raw) == eas
    with pytest.raises(ParseError):
        fscc.parse_full_ea_info(bytes.fromhex("0000000000020000414243"))


@given(st.binary(max_size=300))
def test_fscc_parsers_fuzz(data: bytes) -> None:
    for p in (
        fscc.parse_rename_info,
        fscc.parse_basic_info,
        fscc.parse_full_ea_info,
        fscc.parse_security_descriptor,
        fscc.parse_mode_info,
        fscc.parse_end_of_file_info,
    ):
        parses_or_parse_error(p, data)
    for cls in fscc.DIRECTORY_FIXED_SIZE:
        parses_or_parse_error(functools.partial(fscc.parse_directory_names, cls), data)


test_fuzz_sd = fuzz(
    fscc.parse_security_descriptor, fscc.build_security_descriptor("S-1-5-18", "S-1-5-32-544")
)
