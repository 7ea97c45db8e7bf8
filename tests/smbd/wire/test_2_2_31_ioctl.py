"""[MS-SMB2] 2.2.31 IOCTL Request / 2.2.32 IOCTL Response and the FSCTL structures
(2.2.31.1 SRV_COPYCHUNK_COPY, 2.2.32.1, 2.2.32.3, 2.2.31.4, 2.2.32.5, 2.2.32.6;
[MS-FSCC] 2.3).

Vectors from smbclient 4.17 (`-m SMB3_00`, FSCTL_VALIDATE_NEGOTIATE_INFO) and smbtorture
smb2.ioctl.copy_chunk_simple against Samba on this machine.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbd.wire import fsctl, ioctl
from smbd.wire.errors import ParseError
from smbd.wire.fsctl import FsctlCode
from smbd.wire.status import NTStatus
from tests.smbd.wire.wirecheck import check_truncation_and_trailing, fuzz, parses_or_parse_error

VALIDATE_NEGOTIATE_REQUEST = bytes.fromhex(
    "3900"  # StructureSize 57
    "0000"  # Reserved
    "04021400"  # CtlCode FSCTL_VALIDATE_NEGOTIATE_INFO
    "ffffffffffffffff"  # FileId.Persistent
    "ffffffffffffffff"  # FileId.Volatile
    "78000000"  # InputOffset 0x78
    "1e000000"  # InputCount 30
    "00000000"  # MaxInputResponse
    "78000000"  # OutputOffset
    "00000000"  # OutputCount
    "18000000"  # MaxOutputResponse 24
    "01000000"  # Flags IS_FSCTL
    "00000000"  # Reserved2
    # VALIDATE_NEGOTIATE_INFO request
    "7f000000"  # Capabilities
    "de49b798793b1045971b6136e2ff62e0"  # Guid
    "0100"  # SecurityMode SIGNING_ENABLED
    "0300"  # DialectCount
    "0202"
    "1002"
    "0003"  # Dialects 2.0.2, 2.1, 3.0
)

VALIDATE_NEGOTIATE_RESPONSE = bytes.fromhex(
    "3100"  # StructureSize 49
    "0000"  # Reserved
    "04021400"  # CtlCode
    "ffffffffffffffff"  # FileId.Persistent
    "ffffffffffffffff"  # FileId.Volatile
    "70000000"  # InputOffset
    "00000000"  # InputCount
    "70000000"  # OutputOffset
    "18000000"  # OutputCount 24
    "00000000"  # Flags
    "00000000"  # Reserved2
    "4f000000"  # Capabilities
    "616e63686f72736d6200000000000000"  # ServerGuid
    "0100"  # SecurityMode
    "0003"  # Dialect 3.0
)

COPYCHUNK_REQUEST = bytes.fromhex(
    "3900"  # StructureSize
    "0000"  # Reserved
    "f2401400"  # CtlCode FSCTL_SRV_COPYCHUNK
    "0868d4b800000000"  # FileId.Persistent
    "224b0d3c00000000"  # FileId.Volatile
    "78000000"  # InputOffset
    "38000000"  # InputCount 56
    "00000000"  # MaxInputResponse
    "00000000"  # OutputOffset
    "00000000"  # OutputCount
    "0c000000"  # MaxOutputResponse 12
    "01000000"  # Flags
    "00000000"  # Reserved2
    # SRV_COPYCHUNK_COPY
    "35db078000000000a331b9ce000000007800140000000000"  # SourceKey (24)
    "01000000"  # ChunkCount 1
    "00000000"  # Reserved
    "0000000000000000"  # SourceOffset
    "0000000000000000"  # TargetOffset
    "00100000"  # Length 4096
    "00000000"  # Reserved
)

COPYCHUNK_OUTPUT = bytes.fromhex(
    "01000000"  # ChunksWritten
    "00000000"  # ChunkBytesWritten
    "00100000"  # TotalBytesWritten
)

RESUME_KEY_OUTPUT = bytes.fromhex(
    "35db078000000000a331b9ce000000007800140000000000"  # ResumeKey (24)
    "00000000"  # ContextLength 0
    "00000000"  # Context
)


def test_validate_negotiate_request() -> None:
    r = ioctl.parse_ioctl_request(VALIDATE_NEGOTIATE_REQUEST)
    assert r.ctl_code == FsctlCode.FSCTL_VALIDATE_NEGOTIATE_INFO
    assert r.file_id == (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
    assert r.is_fsctl and r.max_output_response == 24 and len(r.output) == 0
    v = fsctl.parse_validate_negotiate_request(r.input)
    assert v == fsctl.ValidateNegotiateRequest(
        0x7F, bytes.fromhex("de49b798793b1045971b6136e2ff62e0"), 1, (0x202, 0x210, 0x300)
    )
    assert fsctl.pack_validate_negotiate_request(v) == bytes(r.input)


def test_validate_negotiate_response_matches_samba() -> None:
    out = fsctl.pack_validate_negotiate_response(
        fsctl.ValidateNegotiateResponse(0x4F, b"anchorsmb".ljust(16, b"\0"), 1, 0x300)
    )
    parts = ioctl.pack_ioctl_response(
        FsctlCode.FSCTL_VALIDATE_NEGOTIATE_INFO, (2**64 - 1, 2**64 - 1), out
    )
    assert b"".join(bytes(p) for p in parts) == VALIDATE_NEGOTIATE_RESPONSE
    back = ioctl.parse_ioctl_response(VALIDATE_NEGOTIATE_RESPONSE)
    assert fsctl.parse_validate_negotiate_response(back.output).dialect == 0x300


def test_copychunk() -> None:
    r = ioctl.parse_ioctl_request(COPYCHUNK_REQUEST)
    assert r.ctl_code == FsctlCode.FSCTL_SRV_COPYCHUNK
    cc = fsctl.parse_copychunk_request(r.input)
    assert cc.source_key == bytes.fromhex("35db078000000000a331b9ce000000007800140000000000")
    assert cc.chunks == (fsctl.Chunk(0, 0, 4096),)
    assert fsctl.copychunk_within_limits(cc)
    assert fsctl.pack_copychunk_request(cc) == bytes(r.input)
    assert fsctl.pack_copychunk_response(fsctl.CopyChunkResponse(1, 0, 4096)) == COPYCHUNK_OUTPUT
    assert fsctl.pack_resume_key_response(cc.source_key) == RESUME_KEY_OUTPUT
    assert fsctl.parse_resume_key_response(RESUME_KEY_OUTPUT) == cc.source_key


def test_copychunk_limits() -> None:
    key = bytes(24)
    many = fsctl.CopyChunkRequest(key, tuple(fsctl.Chunk(0, 0, 1) for _ in range(257)))
    big = fsctl.CopyChunkRequest(key, (fsctl.Chunk(0, 0, (1 << 20) + 1),))
    total = fsctl.CopyChunkRequest(key, tuple(fsctl.Chunk(0, 0, 1 << 20) for _ in range(17)))
    zero = fsctl.CopyChunkRequest(key, (fsctl.Chunk(0, 0, 0),))
    for r in (many, big, total, zero):
        assert not fsctl.copychunk_within_limits(r)
    assert fsctl.pack_copychunk_limits() == bytes.fromhex(
        "00010000"  # ChunksWritten = 256 chunks
        "00001000"  # ChunkBytesWritten = 1 MiB
        "00000001"  # TotalBytesWritten = 16 MiB
    )
    raw = bytearray(fsctl.pack_copychunk_request(many))
    struct.pack_into("<I", raw, 24, 258)
    with pytest.raises(ParseError):
        fsctl.parse_copychunk_request(bytes(raw))


@pytest.mark.parametrize(("off", "count"), [(0x77, 30), (0x78, 100), (0x10, 4)])
def test_input_outside_message(off: int, count: int) -> None:
    body = bytearray(VALIDATE_NEGOTIATE_REQUEST)
    struct.pack_into("<II", body, 24, off, count)
    with pytest.raises(ParseError) as e:
        ioctl.parse_ioctl_request(bytes(body))
    assert e.value.status == NTStatus.INVALID_PARAMETER


def test_zero_input_any_offset() -> None:
    body = bytearray(VALIDATE_NEGOTIATE_REQUEST)
    struct.pack_into("<II", body, 24, 0xFFFFFFFF, 0)
    assert len(ioctl.parse_ioctl_request(bytes(body)).input) == 0


def test_validate_negotiate_dialect_count() -> None:
    raw = bytearray(VALIDATE_NEGOTIATE_REQUEST[56:])
    struct.pack_into("<H", raw, 22, 4)
    with pytest.raises(ParseError):
        fsctl.parse_validate_negotiate_request(bytes(raw))
    struct.pack_into("<H", raw, 22, 0)
    with pytest.raises(ParseError):
        fsctl.parse_validate_negotiate_request(bytes(raw))


def test_sparse_structures() -> None:
    assert fsctl.parse_set_sparse(b"") is True
    assert fsctl.parse_set_sparse(b"\0") is False
    z = fsctl.parse_zero_data(struct.pack("<QQ", 4096, 8192))
    assert z == fsctl.ZeroDataInformation(4096, 8192)
    assert fsctl.pack_zero_data(z) == struct.pack("<QQ", 4096, 8192)
    with pytest.raises(ParseError):
        fsctl.parse_zero_data(struct.pack("<QQ", 8192, 4096))
    with pytest.raises(ParseError):
        fsctl.parse_zero_data(bytes(15))
    qar = fsctl.parse_allocated_range(
        bytes.fromhex("00000000000000000000100000000000")  # FileOffset 0, Length 1 MiB
    )
    assert qar == fsctl.AllocatedRange(0, 1 << 20)
    with pytest.raises(ParseError):
        fsctl.parse_allocated_range(struct.pack("<QQ", 1 << 63, 1))
    ranges = [fsctl.AllocatedRange(0, 4096), fsctl.AllocatedRange(1 << 20, 8192)]
    assert fsctl.parse_allocated_ranges(fsctl.pack_allocated_ranges(ranges)) == ranges


def test_network_interface_info() -> None:
    ifaces = [
        fsctl.NetworkInterface(
            2, fsctl.InterfaceCapability.RSS_CAPABLE, 10**10, ipaddress.ip_address("192.0.2.7")
        ),
        fsctl.NetworkInterface(2, 0, 10**10, ipaddress.ip_address("2001:db8::7")),
    ]
    raw = fsctl.pack_network_interfaces(ifaces)
    assert len(raw) == 2 * 152
    assert raw[:40] == bytes.fromhex(
        "98000000"  # Next 152
        "02000000"  # IfIndex
        "01000000"  # Capability RSS
        "00000000"  # Reserved
        "00e40b5402000000"  # LinkSpeed 10 Gb/s
        "0200"  # Family AF_INET
        "0000"  # Port
        "c0000207"  # 192.0.2.7
        "0000000000000000"  # Reserved
    )
    assert raw[152:156] == bytes(4)  # last Next
    assert struct.unpack_from("<H", raw, 152 + 24)[0] == 0x17
    assert fsctl.parse_network_interfaces(raw) == ifaces
    with pytest.raises(ValueError):
        fsctl.pack_network_interfaces([ifaces[0]._replace(if_index=0)])


def test_offload_structures() -> None:
    inp = fsctl.OffloadReadInput(0, 0, 4096, 1 << 20)
    raw = fsctl.pack_offload_read_input(inp)
    assert raw == bytes.fromhex(
        "20000000"  # Size 32
        "00000000"  # Flags
        "00000000"  # TokenTimeToLive
        "00000000"  # Reserved
        "0010000000000000"  # FileOffset
        "0000100000000000"  # CopyLength
    )
    assert fsctl.parse_offload_read_input(raw) == inp
    with pytest.raises(ParseError):
        fsctl.parse_offload_read_input(b"\x21" + raw[1:])
    token = fsctl.pack_offload_token(
        fsctl.OffloadToken(fsctl.STORAGE_OFFLOAD_TOKEN_TYPE_ZERO_DATA, b"")
    )
    assert token[:8] == bytes.fromhex("ffff000100000000")  # big-endian type
    out = fsctl.pack_offload_read_output(0, 1 << 20, token)
    assert len(out) == 528
    assert fsctl.parse_offload_read_output(out) == (0, 1 << 20, token)
    w = fsctl.OffloadWriteInput(0, 0, 1 << 20, 0, token)
    assert fsctl.parse_offload_write_input(fsctl.pack_offload_write_input(w)) == w
    assert fsctl.parse_offload_write_output(fsctl.pack_offload_write_output(4096)) == 4096
    assert fsctl.parse_offload_token(token).token_type == 0xFFFF0001


def test_trim_and_misc() -> None:
    t = fsctl.TrimRequest(0, ((0, 4096), (8192, 4096)))
    assert fsctl.parse_file_level_trim(fsctl.pack_file_level_trim(t)) == t
    with pytest.raises(ParseError):
        fsctl.parse_file_level_trim(struct.pack("<II", 0, 3) + bytes(32))
    assert fsctl.parse_resiliency_request(struct.pack("<II", 120000, 0)) == 120000
    assert fsctl.parse_query_file_regions(b"") is None
    assert fsctl.pack_get_compression() == b"\0\0"
    assert len(fsctl.pack_integrity_information()) == 16
    d = fsctl.parse_duplicate_extents(struct.pack("<QQQQQ", 1, 2, 0, 4096, 8192))
    assert d == fsctl.DuplicateExtents((1, 2), 0, 4096, 8192)


@given(st.binary(max_size=600))
def test_fsctl_parsers_fuzz(data: bytes) -> None:
    parsers = [
        fsctl.parse_copychunk_request,
        fsctl.parse_validate_negotiate_request,
        fsctl.parse_zero_data,
        fsctl.parse_allocated_range,
        fsctl.parse_network_interfaces,
        fsctl.parse_file_level_trim,
        fsctl.parse_offload_read_input,
        fsctl.parse_offload_write_input,
        fsctl.parse_offload_token,
        fsctl.parse_duplicate_extents,
        fsctl.parse_query_file_regions,
        fsctl.parse_resiliency_request,
        fsctl.parse_allocated_ranges,
    ]
    for p in parsers:
        parses_or_parse_error(p, data)


def test_truncation_and_trailing() -> None:
    check_truncation_and_trailing(ioctl.parse_ioctl_request, VALIDATE_NEGOTIATE_REQUEST, fixed=56)
    check_truncation_and_trailing(ioctl.parse_ioctl_request, COPYCHUNK_REQUEST, fixed=56)
    check_truncation_and_trailing(ioctl.parse_ioctl_response, VALIDATE_NEGOTIATE_RESPONSE, fixed=48)
    check_truncation_and_trailing(
        fsctl.parse_validate_negotiate_request, VALIDATE_NEGOTIATE_REQUEST[56:], fixed=24
    )
    check_truncation_and_trailing(fsctl.parse_copychunk_request, COPYCHUNK_REQUEST[56:], fixed=32)


test_fuzz_ioctl = fuzz(ioctl.parse_ioctl_request, COPYCHUNK_REQUEST)
test_fuzz_ioctl_response = fuzz(ioctl.parse_ioctl_response, VALIDATE_NEGOTIATE_RESPONSE)
