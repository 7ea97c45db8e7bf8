"""[MS-SMB2] 2.2.19-2.2.22 READ and WRITE, with [MS-SMBD] 2.2.3.1 buffer descriptors.

Vectors from smbclient 4.17 (`put`/`get` of a 70000-byte file) against Samba.
"""

from __future__ import annotations

import struct

import pytest

from smbd.wire import rw
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus
from tests.smbd.wire.wirecheck import check_truncation_and_trailing, fuzz

READ_REQUEST = bytes.fromhex(
    "3100"  # StructureSize 49
    "00"  # Padding
    "00"  # Flags
    "70110100"  # Length 70000
    "0000000000000000"  # Offset
    "97abac1600000000"  # FileId.Persistent
    "6ac8929d00000000"  # FileId.Volatile
    "00000000"  # MinimumCount
    "00000000"  # Channel NONE
    "00000000"  # RemainingBytes
    "0000"  # ReadChannelInfoOffset
    "0000"  # ReadChannelInfoLength
    "00"  # Buffer (1 byte)
)

READ_RESPONSE_FIXED = bytes.fromhex(
    "1100"  # StructureSize 17
    "50"  # DataOffset 0x50
    "00"  # Reserved
    "70110100"  # DataLength 70000
    "00000000"  # DataRemaining
    "00000000"  # Reserved2
)

WRITE_REQUEST_FIXED = bytes.fromhex(
    "3100"  # StructureSize 49
    "7000"  # DataOffset 0x70
    "70110100"  # Length 70000
    "0000000000000000"  # Offset
    "d76c351900000000"  # FileId.Persistent
    "e8947c3b00000000"  # FileId.Volatile
    "00000000"  # Channel
    "00000000"  # RemainingBytes
    "0000"  # WriteChannelInfoOffset
    "0000"  # WriteChannelInfoLength
    "00000000"  # Flags
)

WRITE_RESPONSE = bytes.fromhex(
    "1100"  # StructureSize 17
    "0000"  # Reserved
    "70110100"  # Count 70000
    "00000000"  # Remaining
    "0000"  # WriteChannelInfoOffset
    "0000"  # WriteChannelInfoLength
)

PAYLOAD = bytes(range(256)) * 273 + bytes(range(112))  # 70000 bytes
SMALL_WRITE = WRITE_REQUEST_FIXED[:4] + (10).to_bytes(4, "little") + WRITE_REQUEST_FIXED[8:]
SMALL_WRITE += b"0123456789"


def test_read_request() -> None:
    r = rw.parse_read_request(READ_REQUEST)
    assert r == rw.ReadRequest(0, 0, 70000, 0, (0x16ACAB97, 0x9D92C86A), 0, rw.Channel.NONE, 0)
    assert rw.pack_read_request(r) == READ_REQUEST


def test_read_response_is_iovecs_matching_samba() -> None:
    parts = rw.pack_read_response(memoryview(PAYLOAD))
    assert parts[0] == READ_RESPONSE_FIXED
    assert isinstance(parts[1], memoryview) and parts[1].obj is PAYLOAD  # not copied
    back = rw.parse_read_response(READ_RESPONSE_FIXED + PAYLOAD)
    assert bytes(back.data) == PAYLOAD


def test_write_request_data_is_a_view() -> None:
    body = WRITE_REQUEST_FIXED + PAYLOAD
    w = rw.parse_write_request(body)
    assert w.offset == 0 and w.file_id == (0x19356CD7, 0x3B7C94E8)
    assert len(w.data) == 70000 and w.data.obj is body
    assert bytes(w.data) == PAYLOAD
    assert b"".join(bytes(p) for p in rw.pack_write_request(w)) == body


def test_write_response_matches_samba() -> None:
    assert rw.pack_write_response(70000) == WRITE_RESPONSE
    assert rw.parse_write_response(WRITE_RESPONSE) == (70000, 0)


@pytest.mark.parametrize(
    ("data_off", "length"),
    [(0x6F, 10), (0x70, 70001), (0, 1), (0xFFFF, 70000)],
)
def test_write_data_outside_message(data_off: int, length: int) -> None:
    body = bytearray(WRITE_REQUEST_FIXED + PAYLOAD)
    struct.pack_into("<HI", body, 2, data_off, length)
    with pytest.raises(ParseError) as e:
        rw.parse_write_request(bytes(body))
    assert e.value.status == NTStatus.INVALID_PARAMETER


def test_rdma_write_descriptors() -> None:
    desc = (rw.BufferDescriptor(0x1000, 0xABCD, 65536), rw.BufferDescriptor(0, 7, 4096))
    w = rw.WriteRequest(memoryview(b""), 8192, (1, 2), rw.Channel.RDMA_V1, 69632, 0, desc)
    raw = b"".join(bytes(p) for p in rw.pack_write_request(w))
    assert raw[48:64] == bytes.fromhex(
        "0010000000000000"  # Offset
        "cdab0000"  # Token
        "00000100"  # Length
    )
    back = rw.parse_write_request(raw)
    assert back.channel_info == desc and len(back.data) == 0
    assert back.remaining_bytes == 69632


def test_rdma_read_descriptors() -> None:
    desc = (rw.BufferDescriptor(0, 1, 1 << 20),)
    r = rw.ReadRequest(0, 0, 1 << 20, 0, (1, 2), 0, rw.Channel.RDMA_V1_INVALIDATE, 0, desc)
    assert rw.parse_read_request(rw.pack_read_request(r)) == r


def test_channel_info_not_descriptor_multiple() -> None:
    desc = (rw.BufferDescriptor(0, 1, 2),)
    r = rw.ReadRequest(0, 0, 1, 0, (1, 2), 0, rw.Channel.RDMA_V1, 0, desc)
    raw = bytearray(rw.pack_read_request(r))
    struct.pack_into("<H", raw, 46, 15)
    with pytest.raises(ParseError):
        rw.parse_read_request(bytes(raw))
    struct.pack_into("<HH", raw, 44, 0x60, 16)  # overlaps the fixed part
    with pytest.raises(ParseError):
        rw.parse_read_request(bytes(raw))


def test_empty_read_response() -> None:
    parts = rw.pack_read_response(b"", data_remaining=4096)
    assert parts == [bytes.fromhex("11005000000000000010000000000000")]


def test_truncation_and_trailing() -> None:
    check_truncation_and_trailing(rw.parse_read_request, READ_REQUEST, fixed=48)
    check_truncation_and_trailing(rw.parse_write_request, SMALL_WRITE, fixed=48)
    check_truncation_and_trailing(rw.parse_write_response, WRITE_RESPONSE, fixed=16)


test_fuzz_read = fuzz(rw.parse_read_request, READ_REQUEST)
test_fuzz_write = fuzz(rw.parse_write_request, SMALL_WRITE)
test_fuzz_read_response = fuzz(rw.parse_read_response, READ_RESPONSE_FIXED + b"xy")
test_fuzz_descriptors = fuzz(rw.parse_buffer_descriptors, bytes(32))
