"""[MS-SMB2] 2.2.15 SMB2 CLOSE Request and 2.2.16 SMB2 CLOSE Response."""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from smbd.wire._util import Buffer, body_view

CLOSE_FLAG_POSTQUERY_ATTRIB: Final = 0x0001

# StructureSize Flags Reserved FileId.Persistent FileId.Volatile
_REQ: Final = struct.Struct("<HHIQQ")
# StructureSize Flags Reserved CreationTime LastAccessTime LastWriteTime ChangeTime
# AllocationSize EndofFile FileAttributes
_RESP: Final = struct.Struct("<HHIQQQQQQI")


class CloseRequest(NamedTuple):
    """[MS-SMB2] 2.2.15 SMB2 CLOSE Request."""

    flags: int
    file_id: tuple[int, int]

    @property
    def postquery_attrib(self) -> bool:
        return bool(self.flags & CLOSE_FLAG_POSTQUERY_ATTRIB)


def parse_close_request(body: Buffer) -> CloseRequest:
    mv = body_view(body, 24, "CLOSE")
    _, flags, _, p, v = _REQ.unpack_from(mv)
    return CloseRequest(flags, (p, v))


def pack_close_request(r: CloseRequest) -> bytes:
    return _REQ.pack(24, r.flags, 0, *r.file_id)


class CloseResponse(NamedTuple):
    """[MS-SMB2] 2.2.16 SMB2 CLOSE Response. With POSTQUERY_ATTRIB clear every field after
    Flags is zero (:data:`EMPTY_CLOSE_RESPONSE`)."""

    flags: int = 0
    creation_time: int = 0
    last_access_time: int = 0
    last_write_time: int = 0
    change_time: int = 0
    allocation_size: int = 0
    end_of_file: int = 0
    file_attributes: int = 0


def pack_close_response(r: CloseResponse) -> bytes:
    return _RESP.pack(
        60,
        r.flags,
        0,
        r.creation_time,
        r.last_access_time,
        r.last_write_time,
        r.change_time,
        r.allocation_size,
        r.end_of_file,
        r.file_attributes,
    )


EMPTY_CLOSE_RESPONSE: Final = pack_close_response(CloseResponse())


def parse_close_response(body: Buffer) -> CloseResponse:
    mv = body_view(body, 60, "CLOSE response")
    v = _RESP.unpack_from(mv)
    return CloseResponse(v[1], *v[3:])
