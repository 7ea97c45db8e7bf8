"""[MS-SMB2] 2.2.19 READ Request, 2.2.20 READ Response, 2.2.21 WRITE Request,
2.2.22 WRITE Response, and the [MS-SMBD] 2.2.3.1 SMB_DIRECT_BUFFER_DESCRIPTOR_V1 list that
ReadChannelInfo/WriteChannelInfo carry for RDMA channels.

The WRITE payload is handed over as a view of the request (no copy) and the READ response
is built as ``[fixed part, payload]`` for ``sendmsg``.
"""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag
from typing import Final, NamedTuple

from smbd.wire._util import Buffer, body_view, region
from smbd.wire.errors import ParseError
from smbd.wire.header import HEADER_SIZE


class Channel(IntEnum):
    NONE = 0x00000000
    RDMA_V1 = 0x00000001
    RDMA_V1_INVALIDATE = 0x00000002
    RDMA_TRANSFORM = 0x00000003


class ReadFlags(IntFlag):
    UNBUFFERED = 0x01
    REQUEST_COMPRESSED = 0x02


class WriteFlags(IntFlag):
    WRITE_THROUGH = 0x00000001
    WRITE_UNBUFFERED = 0x00000002


READ_RESPONSE_RDMA_TRANSFORM: Final = 0x00000001

_DESC: Final = struct.Struct("<QII")


class BufferDescriptor(NamedTuple):
    """[MS-SMBD] 2.2.3.1 SMB_DIRECT_BUFFER_DESCRIPTOR_V1: Offset(8) Token(4) Length(4)."""

    offset: int
    token: int
    length: int


def parse_buffer_descriptors(raw: Buffer) -> tuple[BufferDescriptor, ...]:
    """A list of 16-byte descriptors; a length that is not a multiple of 16 is
    INVALID_PARAMETER."""
    if len(raw) % _DESC.size:
        raise ParseError(f"channel info of {len(raw)} bytes is not a descriptor list")
    return tuple(BufferDescriptor(*t) for t in _DESC.iter_unpack(raw))


def pack_buffer_descriptors(descs: tuple[BufferDescriptor, ...] | list[BufferDescriptor]) -> bytes:
    return b"".join(_DESC.pack(*d) for d in descs)


# StructureSize Padding Flags Length Offset FileId.Persistent FileId.Volatile MinimumCount
# Channel RemainingBytes ReadChannelInfoOffset ReadChannelInfoLength
_READ_REQ: Final = struct.Struct("<HBBIQQQIIIHH")
READ_REQUEST_SIZE: Final = 49


class ReadRequest(NamedTuple):
    """[MS-SMB2] 2.2.19 SMB2 READ Request."""

    padding: int
    flags: int
    length: int
    offset: int
    file_id: tuple[int, int]
    minimum_count: int
    channel: int
    remaining_bytes: int
    channel_info: tuple[BufferDescriptor, ...] = ()


def parse_read_request(body: Buffer) -> ReadRequest:
    """ReadChannelInfo, when present, must lie inside the request after the fixed part and
    be a whole number of buffer descriptors (INVALID_PARAMETER otherwise)."""
    mv = body_view(body, READ_REQUEST_SIZE, "READ")
    (_, pad, flags, length, offset, p, v, minimum, channel, remaining, ci_off, ci_len) = (
        _READ_REQ.unpack_from(mv)
    )
    descs: tuple[BufferDescriptor, ...] = ()
    if ci_len:
        raw = region(mv, ci_off, ci_len, "ReadChannelInfo", minimum=_READ_REQ.size)
        descs = parse_buffer_descriptors(raw)
    return ReadRequest(pad, flags, length, offset, (p, v), minimum, channel, remaining, descs)


def pack_read_request(r: ReadRequest) -> bytes:
    ci = pack_buffer_descriptors(r.channel_info)
    ci_off = HEADER_SIZE + _READ_REQ.size if ci else 0
    return _READ_REQ.pack(
        READ_REQUEST_SIZE,
        r.padding,
        r.flags,
        r.length,
        r.offset,
        r.file_id[0],
        r.file_id[1],
        r.minimum_count,
        r.channel,
        r.remaining_bytes,
        ci_off,
        len(ci),
    ) + (ci or b"\0")


# StructureSize DataOffset Reserved DataLength DataRemaining Flags(Reserved2)
_READ_RESP: Final = struct.Struct("<HBBIII")
READ_DATA_OFFSET: Final = HEADER_SIZE + _READ_RESP.size  # 80


def pack_read_response(data: Buffer, *, data_remaining: int = 0, flags: int = 0) -> list[Buffer]:
    """[MS-SMB2] 2.2.20 SMB2 READ Response as iovec parts ``[fixed 16 bytes, data]``. The
    data follows the fixed part directly (DataOffset 0x50). For an RDMA read the data went
    over RDMA: pass ``data=b""`` and the byte count in ``data_remaining``."""
    fixed = _READ_RESP.pack(17, READ_DATA_OFFSET, 0, len(data), data_remaining, flags)
    return [fixed, data] if len(data) else [fixed]


class ReadResponse(NamedTuple):
    data: memoryview
    data_remaining: int
    flags: int


def parse_read_response(body: Buffer) -> ReadResponse:
    mv = body_view(body, 17, "READ response")
    _, off, _, length, remaining, flags = _READ_RESP.unpack_from(mv)
    data = region(mv, off, length, "READ data", minimum=_READ_RESP.size)
    return ReadResponse(data, remaining, flags)


# StructureSize DataOffset Length Offset FileId.Persistent FileId.Volatile Channel
# RemainingBytes WriteChannelInfoOffset WriteChannelInfoLength Flags
_WRITE_REQ: Final = struct.Struct("<HHIQQQIIHHI")
WRITE_REQUEST_SIZE: Final = 49
WRITE_DATA_OFFSET: Final = HEADER_SIZE + _WRITE_REQ.size  # 0x70


class WriteRequest(NamedTuple):
    """[MS-SMB2] 2.2.21 SMB2 WRITE Request. ``data`` is a view into the request buffer
    (empty for an RDMA write, whose payload the descriptors in ``channel_info`` name)."""

    data: memoryview
    offset: int
    file_id: tuple[int, int]
    channel: int
    remaining_bytes: int
    flags: int
    channel_info: tuple[BufferDescriptor, ...] = ()


def parse_write_request(body: Buffer) -> WriteRequest:
    """DataOffset/Length and WriteChannelInfoOffset/Length must lie inside the request and
    after the fixed part; otherwise INVALID_PARAMETER. No bytes are copied."""
    mv = body_view(body, WRITE_REQUEST_SIZE, "WRITE")
    (_, d_off, d_len, offset, p, v, channel, remaining, ci_off, ci_len, flags) = (
        _WRITE_REQ.unpack_from(mv)
    )
    data = region(mv, d_off, d_len, "WRITE data", minimum=_WRITE_REQ.size)
    descs: tuple[BufferDescriptor, ...] = ()
    if ci_len:
        raw = region(mv, ci_off, ci_len, "WriteChannelInfo", minimum=_WRITE_REQ.size)
        descs = parse_buffer_descriptors(raw)
    return WriteRequest(data, offset, (p, v), channel, remaining, flags, descs)


def pack_write_request(r: WriteRequest) -> list[Buffer]:
    """Body parts ``[fixed, channel info + data]`` (channel info first when present)."""
    ci = pack_buffer_descriptors(r.channel_info)
    ci_off = WRITE_DATA_OFFSET if ci else 0
    d_off = WRITE_DATA_OFFSET + len(ci)
    fixed = _WRITE_REQ.pack(
        WRITE_REQUEST_SIZE,
        d_off,
        len(r.data),
        r.offset,
        r.file_id[0],
        r.file_id[1],
        r.channel,
        r.remaining_bytes,
        ci_off,
        len(ci),
        r.flags,
    )
    tail = ci + bytes(r.data)
    return [fixed, tail or b"\0"]


# StructureSize Reserved Count Remaining WriteChannelInfoOffset WriteChannelInfoLength
_WRITE_RESP: Final = struct.Struct("<HHIIHH")


def pack_write_response(count: int, remaining: int = 0) -> bytes:
    """[MS-SMB2] 2.2.22 SMB2 WRITE Response (16 bytes; StructureSize says 17, and like
    Windows and Samba no dynamic byte is sent)."""
    return _WRITE_RESP.pack(17, 0, count, remaining, 0, 0)


def parse_write_response(body: Buffer) -> tuple[int, int]:
    mv = body_view(body, 17, "WRITE response")
    _, _, count, remaining, _, _ = _WRITE_RESP.unpack_from(mv)
    return (count, remaining)
