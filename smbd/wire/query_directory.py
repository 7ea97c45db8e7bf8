"""[MS-SMB2] 2.2.33 SMB2 QUERY_DIRECTORY Request and 2.2.34 QUERY_DIRECTORY Response.
The entries themselves are encoded by :func:`smbd.wire.fscc.encode_directory_entries`."""

from __future__ import annotations

import struct
from enum import IntFlag
from typing import Final, NamedTuple

from smbd.wire._util import Buffer, body_view, decode_utf16, encode_utf16, region
from smbd.wire.header import HEADER_SIZE


class QueryDirectoryFlags(IntFlag):
    RESTART_SCANS = 0x01
    RETURN_SINGLE_ENTRY = 0x02
    INDEX_SPECIFIED = 0x04
    REOPEN = 0x10


# StructureSize FileInformationClass Flags FileIndex FileId.Persistent FileId.Volatile
# FileNameOffset FileNameLength OutputBufferLength
_REQ: Final = struct.Struct("<HBBIQQHHI")
# StructureSize OutputBufferOffset OutputBufferLength
_RESP: Final = struct.Struct("<HHI")
QUERY_DIRECTORY_OUTPUT_OFFSET: Final = HEADER_SIZE + _RESP.size  # 72


class QueryDirectoryRequest(NamedTuple):
    """[MS-SMB2] 2.2.33. ``pattern`` is the search pattern ("*", "a?c.*", an exact name);
    an empty pattern means the client sent none."""

    info_class: int
    flags: int
    file_index: int
    file_id: tuple[int, int]
    pattern: str
    output_buffer_length: int


def parse_query_directory_request(body: Buffer) -> QueryDirectoryRequest:
    """The FileName must lie inside the request after the fixed part and be UTF-16
    (INVALID_PARAMETER / OBJECT_NAME_INVALID)."""
    mv = body_view(body, 33, "QUERY_DIRECTORY")
    _, cls, flags, index, p, v, n_off, n_len, out_len = _REQ.unpack_from(mv)
    raw = region(mv, n_off, n_len, "QUERY_DIRECTORY FileName", minimum=_REQ.size)
    return QueryDirectoryRequest(
        cls, flags, index, (p, v), decode_utf16(raw, "search pattern"), out_len
    )


def pack_query_directory_request(r: QueryDirectoryRequest) -> bytes:
    raw = encode_utf16(r.pattern)
    fixed = _REQ.pack(
        33,
        r.info_class,
        r.flags,
        r.file_index,
        r.file_id[0],
        r.file_id[1],
        HEADER_SIZE + _REQ.size if raw else 0,
        len(raw),
        r.output_buffer_length,
    )
    return fixed + (raw or b"\0")


def pack_query_directory_response(entries: Buffer) -> list[Buffer]:
    """[MS-SMB2] 2.2.34 as iovec parts ``[fixed 8 bytes, entries]``."""
    fixed = _RESP.pack(9, QUERY_DIRECTORY_OUTPUT_OFFSET if len(entries) else 0, len(entries))
    return [fixed, entries] if len(entries) else [fixed, b"\0"]


def parse_query_directory_response(body: Buffer) -> memoryview:
    mv = body_view(body, 9, "QUERY_DIRECTORY response")
    _, off, length = _RESP.unpack_from(mv)
    return region(mv, off, length, "QUERY_DIRECTORY output", minimum=_RESP.size)
