"""[MS-SMB2] 2.2.37 QUERY_INFO Request, 2.2.38 QUERY_INFO Response, 2.2.39 SET_INFO
Request and 2.2.40 SET_INFO Response. The information classes themselves are in
:mod:`smbd.wire.fscc`."""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag
from typing import Final, NamedTuple

from smbd.wire._util import Buffer, body_view, region
from smbd.wire.header import HEADER_SIZE


class InfoType(IntEnum):
    FILE = 0x01
    FILESYSTEM = 0x02
    SECURITY = 0x03
    QUOTA = 0x04


class SecurityInformation(IntFlag):
    """AdditionalInformation for InfoType SECURITY ([MS-SMB2] 2.2.37)."""

    OWNER = 0x00000001
    GROUP = 0x00000002
    DACL = 0x00000004
    SACL = 0x00000008
    LABEL = 0x00000010
    ATTRIBUTE = 0x00000020
    SCOPE = 0x00000040
    BACKUP = 0x00010000


class QueryInfoFlags(IntFlag):
    RESTART_SCAN = 0x00000001
    RETURN_SINGLE_ENTRY = 0x00000002
    INDEX_SPECIFIED = 0x00000004


# StructureSize InfoType FileInfoClass OutputBufferLength InputBufferOffset Reserved
# InputBufferLength AdditionalInformation Flags FileId.Persistent FileId.Volatile
_QREQ: Final = struct.Struct("<HBBIHHIIIQQ")
# StructureSize OutputBufferOffset OutputBufferLength
_QRESP: Final = struct.Struct("<HHI")
QUERY_INFO_OUTPUT_OFFSET: Final = HEADER_SIZE + _QRESP.size  # 72
# StructureSize InfoType FileInfoClass BufferLength BufferOffset Reserved
# AdditionalInformation FileId.Persistent FileId.Volatile
_SREQ: Final = struct.Struct("<HBBIHHIQQ")


class QueryInfoRequest(NamedTuple):
    """[MS-SMB2] 2.2.37. ``input`` (EA name lists, quota SIDs) is a view of the request."""

    info_type: int
    info_class: int
    output_buffer_length: int
    input: memoryview
    additional_information: int
    flags: int
    file_id: tuple[int, int]


def parse_query_info_request(body: Buffer) -> QueryInfoRequest:
    mv = body_view(body, 41, "QUERY_INFO")
    _, itype, cls, out_len, in_off, _, in_len, addl, flags, p, v = _QREQ.unpack_from(mv)
    inp = region(mv, in_off, in_len, "QUERY_INFO input", minimum=_QREQ.size)
    return QueryInfoRequest(itype, cls, out_len, inp, addl, flags, (p, v))


def pack_query_info_request(r: QueryInfoRequest) -> bytes:
    fixed = _QREQ.pack(
        41,
        r.info_type,
        r.info_class,
        r.output_buffer_length,
        HEADER_SIZE + _QREQ.size if len(r.input) else 0,
        0,
        len(r.input),
        r.additional_information,
        r.flags,
        *r.file_id,
    )
    return fixed + (bytes(r.input) or b"\0")


def pack_query_info_response(output: Buffer) -> list[Buffer]:
    """[MS-SMB2] 2.2.38 as iovec parts ``[fixed 8 bytes, output]``."""
    fixed = _QRESP.pack(9, QUERY_INFO_OUTPUT_OFFSET, len(output))
    return [fixed, output] if len(output) else [fixed, b"\0"]


def parse_query_info_response(body: Buffer) -> memoryview:
    mv = body_view(body, 9, "QUERY_INFO response")
    _, off, length = _QRESP.unpack_from(mv)
    return region(mv, off, length, "QUERY_INFO output", minimum=_QRESP.size)


class SetInfoRequest(NamedTuple):
    """[MS-SMB2] 2.2.39. ``buffer`` is a view of the request."""

    info_type: int
    info_class: int
    buffer: memoryview
    additional_information: int
    file_id: tuple[int, int]


def parse_set_info_request(body: Buffer) -> SetInfoRequest:
    mv = body_view(body, 33, "SET_INFO")
    _, itype, cls, b_len, b_off, _, addl, p, v = _SREQ.unpack_from(mv)
    buf = region(mv, b_off, b_len, "SET_INFO buffer", minimum=_SREQ.size)
    return SetInfoRequest(itype, cls, buf, addl, (p, v))


def pack_set_info_request(r: SetInfoRequest) -> bytes:
    fixed = _SREQ.pack(
        33,
        r.info_type,
        r.info_class,
        len(r.buffer),
        HEADER_SIZE + _SREQ.size,
        0,
        r.additional_information,
        *r.file_id,
    )
    return fixed + (bytes(r.buffer) or b"\0")


SET_INFO_RESPONSE: Final = struct.pack("<H", 2)
"""[MS-SMB2] 2.2.40: StructureSize 2."""
