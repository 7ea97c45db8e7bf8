"""[MS-SMB2] 2.2.33 QUERY_DIRECTORY Request / 2.2.34 Response with [MS-FSCC] 2.4 directory
entries. Vectors from smbclient 4.17 `ls` against Samba on this machine."""

from __future__ import annotations

import struct

import pytest

from smbd.wire import fscc
from smbd.wire import query_directory as qd
from smbd.wire.errors import ParseError
from smbd.wire.fscc import FileInfoClass
from smbd.wire.status import NTStatus
from tests.smbd.wire.wirecheck import check_truncation_and_trailing, fuzz

REQUEST = bytes.fromhex(
    "2100"  # StructureSize 33
    "25"  # FileInformationClass FileIdBothDirectoryInformation
    "00"  # Flags
    "00000000"  # FileIndex
    "5536276f00000000"  # FileId.Persistent
    "e092d87100000000"  # FileId.Volatile
    "6000"  # FileNameOffset 0x60
    "0a00"  # FileNameLength 10
    "00008000"  # OutputBufferLength 8 MiB
    "63002e00620069006e00"  # "c.bin"
)

ENTRY = bytes.fromhex(
    "00000000"  # NextEntryOffset
    "00000000"  # FileIndex
    "9a95c6332f7edd01"  # CreationTime
    "3d53c7332f7edd01"  # LastAccessTime
    "9e2ac7332f7edd01"  # LastWriteTime
    "9e2ac7332f7edd01"  # ChangeTime
    "7011010000000000"  # EndOfFile 70000
    "0020010000000000"  # AllocationSize 73728
    "20000000"  # FileAttributes ARCHIVE
    "0a000000"  # FileNameLength
    "00000000"  # EaSize
    "00"  # ShortNameLength
    "00"  # Reserved1
    "000000000000000000000000000000000000000000000000"  # ShortName (24)
    "0000"  # Reserved2
    "44c0200000000000"  # FileId
    "63002e00620069006e00"  # "c.bin"
)

RESPONSE = (
    bytes.fromhex(
        "0900"  # StructureSize 9
        "4800"  # OutputBufferOffset 0x48
        "72000000"  # OutputBufferLength 114
    )
    + ENTRY
)

C_BIN = fscc.DirEntry(
    "c.bin",
    creation_time=0x01DD7E2F33C6959A,
    last_access_time=0x01DD7E2F33C7533D,
    last_write_time=0x01DD7E2F33C72A9E,
    change_time=0x01DD7E2F33C72A9E,
    end_of_file=70000,
    allocation_size=73728,
    file_attributes=fscc.FileAttributes.ARCHIVE,
    file_id=0x20C044,
)


def test_request() -> None:
    r = qd.parse_query_directory_request(REQUEST)
    cls = FileInfoClass.FileIdBothDirectoryInformation
    fid = (0x6F273655, 0x71D892E0)
    assert r == qd.QueryDirectoryRequest(cls, 0, 0, fid, "c.bin", 8 << 20)
    assert qd.pack_query_directory_request(r) == REQUEST


def test_entry_and_response_match_samba() -> None:
    buf, n = fscc.encode_directory_entries(
        FileInfoClass.FileIdBothDirectoryInformation, [C_BIN], 65536
    )
    assert n == 1 and buf == ENTRY
    assert b"".join(bytes(p) for p in qd.pack_query_directory_response(buf)) == RESPONSE
    out = qd.parse_query_directory_response(RESPONSE)
    assert fscc.parse_directory_names(FileInfoClass.FileIdBothDirectoryInformation, out) == [
        "c.bin"
    ]


@pytest.mark.parametrize("cls", list(fscc.DIRECTORY_ENCODERS))
def test_every_class_chains_8_byte_aligned(cls: FileInfoClass) -> None:
    names = [".", "..", "a", "long name with spaces.vhdx", "\u00e9t\u00e9"]
    entries = [fscc.DirEntry(n, file_id=i, short_name="A~1") for i, n in enumerate(names)]
    buf, n = fscc.encode_directory_entries(cls, entries, 1 << 16)
    assert n == len(names)
    assert fscc.parse_directory_names(cls, buf) == names
    pos = 0
    fixed = fscc.DIRECTORY_FIXED_SIZE[cls]
    for i in range(n):
        nxt = struct.unpack_from("<I", buf, pos)[0]
        if i == n - 1:
            assert nxt == 0 and pos + fixed + len(names[i].encode("utf-16-le")) == len(buf)
        else:
            assert nxt % 8 == 0 and nxt >= fixed
        pos += nxt


def test_stops_at_the_output_limit() -> None:
    cls = FileInfoClass.FileDirectoryInformation
    entries = [fscc.DirEntry(f"file{i:03d}") for i in range(10)]  # 64 + 14 = 78 -> 80
    buf, n = fscc.encode_directory_entries(cls, entries, 80 * 3 + 78)
    assert n == 4 and len(buf) == 80 * 3 + 78
    buf, n = fscc.encode_directory_entries(cls, entries, 80 * 3 + 77)
    assert n == 3 and len(buf) == 80 * 2 + 78
    buf, n = fscc.encode_directory_entries(cls, entries, 77)
    assert (buf, n) == (b"", 0)
    buf, n = fscc.encode_directory_entries(cls, entries, 1 << 16, single=True)
    assert n == 1


def test_not_a_directory_class() -> None:
    with pytest.raises(ParseError) as e:
        fscc.encode_directory_entries(FileInfoClass.FileBasicInformation, [], 100)
    assert e.value.status == NTStatus.INVALID_INFO_CLASS
    with pytest.raises(ParseError):
        fscc.encode_directory_entries(200, [], 100)


def test_pattern_outside_message() -> None:
    body = bytearray(REQUEST)
    struct.pack_into("<HH", body, 24, 0x60, 12)
    with pytest.raises(ParseError):
        qd.parse_query_directory_request(bytes(body))


def test_truncation_and_trailing() -> None:
    check_truncation_and_trailing(qd.parse_query_directory_request, REQUEST, fixed=32)
    check_truncation_and_trailing(qd.parse_query_directory_response, RESPONSE, fixed=8)


test_fuzz_request = fuzz(qd.parse_query_directory_request, REQUEST)
test_fuzz_response = fuzz(qd.parse_query_directory_response, RESPONSE)
