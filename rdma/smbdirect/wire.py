"""SMB Direct messages ([MS-SMBD] 2.2), little-endian, pure and bounds-checked.

Every parser raises :class:`SmbdParseError`; its ``status`` is the NTSTATUS a negotiate
response would carry, and any parse error on an established connection means disconnect
([MS-SMBD] 3.1.5.7 / 3.1.5.8).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

SMBD_VERSION = 0x0100
FLAG_RESPONSE_REQUESTED = 0x0001

STATUS_SUCCESS = 0x00000000
STATUS_NOT_SUPPORTED = 0xC00000BB
STATUS_INVALID_PARAMETER = 0xC000000D

MIN_RECEIVE_SIZE = 128  # [MS-SMBD] 3.1.5.6: MaxReceiveSize >= 128
MIN_FRAGMENTED_SIZE = 131072  # [MS-SMBD] 3.1.5.6: MaxFragmentedSize >= 131072

NEGOTIATE_REQUEST = struct.Struct("<HHHHIII")  # 20 bytes
NEGOTIATE_RESPONSE = struct.Struct("<HHHHHHIIIII")  # 32 bytes
DATA_HEADER = struct.Struct("<HHHHIII")  # 20 bytes; payload at DataOffset (24)
DATA_OFFSET = 24
BUFFER_DESCRIPTOR_V1 = struct.Struct("<QII")  # 16 bytes


class SmbdParseError(Exception):
    def __init__(self, message: str, status: int = STATUS_INVALID_PARAMETER) -> None:
        super().__init__(message)
        self.status = status


class NegotiateRequest(NamedTuple):
    """[MS-SMBD] 2.2.1 SMB Direct Negotiate Request."""

    min_version: int
    max_version: int
    credits_requested: int
    preferred_send_size: int
    max_receive_size: int
    max_fragmented_size: int

    def encode(self) -> bytes:
        return NEGOTIATE_REQUEST.pack(
            self.min_version,
            self.max_version,
            0,
            self.credits_requested,
            self.preferred_send_size,
            self.max_receive_size,
            self.max_fragmented_size,
        )

    @classmethod
    def decode(cls, buf: memoryview | bytes | bytearray) -> NegotiateRequest:
        if len(buf) < NEGOTIATE_REQUEST.size:
            raise SmbdParseError(f"negotiate request of {len(buf)} bytes (want 20)")
        mn, mx, _res, cr, pss, mrs, mfs = NEGOTIATE_REQUEST.unpack_from(buf, 0)
        return cls(mn, mx, cr, pss, mrs, mfs)


class NegotiateResponse(NamedTuple):
    """[MS-SMBD] 2.2.2 SMB Direct Negotiate Response."""

    min_version: int
    max_version: int
    negotiated_version: int
    credits_requested: int
    credits_granted: int
    status: int
    max_read_write_size: int
    preferred_send_size: int
    max_receive_size: int
    max_fragmented_size: int

    def encode(self) -> bytes:
        return NEGOTIATE_RESPONSE.pack(
            self.min_version,
            self.max_version,
            self.negotiated_version,
            0,
            self.credits_requested,
            self.credits_granted,
            self.status,
            self.max_read_write_size,
            self.preferred_send_size,
            self.max_receive_size,
            self.max_fragmented_size,
        )

    @classmethod
    def decode(cls, buf: memoryview | bytes | bytearray) -> NegotiateResponse:
        if len(buf) < NEGOTIATE_RESPONSE.size:
            raise SmbdParseError(f"negotiate response of {len(buf)} bytes (want 32)")
        mn, mx, nv, _res, cr, cg, st, rw, pss, mrs, mfs = NEGOTIATE_RESPONSE.unpack_from(buf, 0)
        return cls(mn, mx, nv, cr, cg, st, rw, pss, mrs, mfs)


class DataHeader(NamedTuple):
    """[MS-SMBD] 2.2.3 SMB Direct Data Transfer Message header."""

    credits_requested: int
    credits_granted: int
    flags: int
    remaining_data_length: int
    data_offset: int
    data_length: int

    def encode(self) -> bytes:
        """20 bytes, plus the 4 padding bytes when there is a payload (DataOffset 24)."""
        hdr = DATA_HEADER.pack(
            self.credits_requested,
            self.credits_granted,
            self.flags,
            0,
            self.remaining_data_length,
            self.data_offset,
            self.data_length,
        )
        return hdr + bytes(4) if self.data_length else hdr


def encode_data_header_into(
    out: memoryview,
    credits_requested: int,
    credits_granted: int,
    flags: int,
    remaining: int,
    data_length: int,
) -> int:
    """Write a data transfer header into ``out``; returns where the payload goes."""
    offset = DATA_OFFSET if data_length else 0
    DATA_HEADER.pack_into(
        out, 0, credits_requested, credits_granted, flags, 0, remaining, offset, data_length
    )
    if data_length:
        out[20:24] = b"\0\0\0\0"
        return DATA_OFFSET
    return DATA_HEADER.size


def decode_data(buf: memoryview) -> tuple[DataHeader, memoryview]:
    """Parse a data transfer message and return it with its payload view.

    Checks ([MS-SMBD] 3.1.5.8 and 2.2.3): at least 20 bytes; with data, DataOffset 8-byte
    aligned, past the header, and DataOffset + DataLength inside the message.
    """
    if len(buf) < DATA_HEADER.size:
        raise SmbdParseError(f"data transfer message of {len(buf)} bytes (want >= 20)")
    cr, cg, fl, _res, remaining, offset, length = DATA_HEADER.unpack_from(buf, 0)
    hdr = DataHeader(cr, cg, fl, remaining, offset, length)
    if length == 0:
        return hdr, buf[0:0]
    if offset % 8 or offset < DATA_OFFSET:
        raise SmbdParseError(f"bad DataOffset {offset}")
    if offset + length > len(buf):
        raise SmbdParseError(
            f"DataOffset {offset} + DataLength {length} beyond the {len(buf)}-byte message"
        )
    return hdr, buf[offset : offset + length]


class BufferDescriptorV1(NamedTuple):
    """[MS-SMBD] 2.2.3.1 SMB_DIRECT_BUFFER_DESCRIPTOR_V1: where the peer registered memory."""

    offset: int
    token: int
    length: int

    def encode(self) -> bytes:
        return BUFFER_DESCRIPTOR_V1.pack(self.offset, self.token, self.length)


def encode_descriptors(descriptors: Sequence[BufferDescriptorV1]) -> bytes:
    return b"".join(d.encode() for d in descriptors)


def decode_descriptors(buf: memoryview | bytes | bytearray) -> list[BufferDescriptorV1]:
    """The descriptor array of an SMB2 READ/WRITE channel info field (16 bytes each)."""
    if len(buf) == 0 or len(buf) % BUFFER_DESCRIPTOR_V1.size:
        raise SmbdParseError(f"channel info of {len(buf)} bytes is not a descriptor array")
    return [BufferDescriptorV1(*t) for t in BUFFER_DESCRIPTOR_V1.iter_unpack(buf)]
