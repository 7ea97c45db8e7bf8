"""[MS-SMB2] 2.2.37-2.2.40 QUERY_INFO and SET_INFO with [MS-FSCC] 2.4 classes.
Vectors from smbclient 4.17 (`get`, `rename`, `rmdir`) against Samba on this machine."""

from __future__ import annotations

import struct

import pytest

from smbd.wire import fscc, info
from smbd.wire.errors import ParseError
from smbd.wire.fscc import FileInfoClass
from smbd.wire.status import NTStatus
from tests.smbd.wire.wirecheck import check_truncation_and_trailing, fuzz

QUERY_ALL_INFO = bytes.fromhex(
    "2900"  # StructureSize 41
    "01"  # InfoType FILE
    "12"  # FileInfoClass FileAllInformation
    "ffff0000"  # OutputBufferLength
    "0000"  # InputBufferOffset
    "0000"  # Reserved
    "00000000"  # InputBufferLength
    "00000000"  # AdditionalInformation
    "00000000"  # Flags
    "97abac1600000000"  # FileId.Persistent
    "6ac8929d00000000"  # FileId.Volatile
    "00"  # Buffer
)

ALL_INFO = bytes.fromhex(
    # FileBasicInformation
    "9a95c6332f7edd01"  # CreationTime
    "9a95c6332f7edd01"  # LastAccessTime
    "9e2ac7332f7edd01"  # LastWriteTime
    "9e2ac7332f7edd01"  # ChangeTime
    "20000000"  # FileAttributes ARCHIVE
    "00000000"  # Reserved
    # FileStandardInformation
    "0020010000000000"  # AllocationSize
    "7011010000000000"  # EndOfFile
    "01000000"  # NumberOfLinks
    "00"  # DeletePending
    "00"  # Directory
    "0000"  # Reserved
    "44c0200000000000"  # FileInternalInformation.IndexNumber
    "00000000"  # FileEaInformation.EaSize
    "89001200"  # FileAccessInformation.AccessFlags
    "0000000000000000"  # FilePositionInformation
    "00000000"  # FileModeInformation
    "00000000"  # FileAlignmentInformation
    "0c000000"  # FileNameInformation.FileNameLength
    "5c0061002e00620069006e00"  # "\\a.bin"
)

QUERY_ALL_INFO_RESPONSE = (
    bytes.fromhex(
        "0900"  # StructureSize
        "4800"  # OutputBufferOffset
        "70000000"  # OutputBufferLength 112
    )
    + ALL_INFO
)

SET_RENAME = bytes.fromhex(
    "2100"  # StructureSize 33
    "01"  # InfoType FILE
    "0a"  # FileInfoClass FileRenameInformation
    "1e000000"  # BufferLength 30
    "6000"  # BufferOffset 0x60
    "0000"  # Reserved
    "00000000"  # AdditionalInformation
    "a10c0a8100000000"  # FileId.Persistent
    "95cf756f00000000"  # FileId.Volatile
    # FILE_RENAME_INFORMATION_TYPE_2
    "00"  # ReplaceIfExists
    "00000000000000"  # Reserved
    "0000000000000000"  # RootDirectory
    "0a000000"  # FileNameLength
    "63002e00620069006e00"  # "c.bin"
)

SET_DISPOSITION = bytes.fromhex(
    "2100010d0100000060000000000000009d7a81d700000000cb029c100000000001"  # DeletePending
)


def test_query_request() -> None:
    r = info.parse_query_info_request(QUERY_ALL_INFO)
    assert (r.info_type, r.info_class) == (info.InfoType.FILE, FileInfoClass.FileAllInformation)
    assert r.output_buffer_length == 0xFFFF and len(r.input) == 0
    assert r.file_id == (0x16ACAB97, 0x9D92C86A)
    assert info.pack_query_info_request(r) == QUERY_ALL_INFO


def test_all_information_matches_samba() -> None:
    raw = fscc.pack_all_info(
        fscc.AllInfo(
            fscc.BasicInfo(
                0x01DD7E2F33C6959A, 0x01DD7E2F33C6959A, 0x01DD7E2F33C72A9E, 0x01DD7E2F33C72A9E, 0x20
            ),
            fscc.StandardInfo(73728, 70000, 1, False, False),
            0x20C044,
            0,
            0x00120089,
            0,
            0,
            0,
            "\\a.bin",
        )
    )
    assert raw == ALL_INFO
    parts = info.pack_query_info_response(raw)
    assert b"".join(bytes(p) for p in parts) == QUERY_ALL_INFO_RESPONSE
    assert bytes(info.parse_query_info_response(QUERY_ALL_INFO_RESPONSE)) == ALL_INFO


def test_set_rename() -> None:
    r = info.parse_set_info_request(SET_RENAME)
    assert r.info_class == FileInfoClass.FileRenameInformation
    ren = fscc.parse_rename_info(r.buffer)
    assert ren == fscc.RenameInfo(False, 0, "c.bin")
    assert fscc.pack_rename_info(ren) == bytes(r.buffer)
    assert info.pack_set_info_request(r) == SET_RENAME


def test_set_disposition() -> None:
    r = info.parse_set_info_request(SET_DISPOSITION)
    assert r.info_class == FileInfoClass.FileDispositionInformation
    assert fscc.parse_disposition_info(r.buffer) is True
    assert bytes.fromhex("0200") == info.SET_INFO_RESPONSE


def test_rename_errors() -> None:
    with pytest.raises(ParseError) as e:
        fscc.parse_rename_info(bytes(19))
    assert e.value.status == NTStatus.INFO_LENGTH_MISMATCH
    with pytest.raises(ParseError) as e:
        fscc.parse_rename_info(struct.pack("<B7xQI", 1, 0, 12) + b"a\0b\0")
    assert e.value.status == NTStatus.INVALID_PARAMETER
    ex = fscc.RenameInfo(True, 0, "x", fscc.FILE_RENAME_REPLACE_IF_EXISTS)
    assert fscc.parse_rename_info(fscc.pack_rename_info(ex, ex=True), ex=True) == ex


def test_buffer_outside_message() -> None:
    body = bytearray(SET_RENAME)
    struct.pack_into("<I", body, 4, 31)
    with pytest.raises(ParseError):
        info.parse_set_info_request(bytes(body))
    body = bytearray(QUERY_ALL_INFO)
    struct.pack_into("<HHI", body, 8, 0x68, 0, 4)
    with pytest.raises(ParseError):
        info.parse_query_info_request(bytes(body))


def test_truncation_and_trailing() -> None:
    check_truncation_and_trailing(info.parse_query_info_request, QUERY_ALL_INFO, fixed=40)
    check_truncation_and_trailing(info.parse_set_info_request, SET_RENAME, fixed=32)
    check_truncation_and_trailing(info.parse_query_info_response, QUERY_ALL_INFO_RESPONSE, fixed=8)


test_fuzz_query = fuzz(info.parse_query_info_request, QUERY_ALL_INFO)
test_fuzz_set = fuzz(info.parse_set_info_request, SET_RENAME)
test_fuzz_rename = fuzz(fscc.parse_rename_info, SET_RENAME[32:])
