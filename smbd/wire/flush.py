"""[MS-SMB2] 2.2.17 SMB2 FLUSH Request and 2.2.18 SMB2 FLUSH Response."""

from __future__ import annotations

import struct
from typing import Final

from smbd.wire._util import Buffer, body_view

# StructureSize Reserved1 Reserved2 FileId.Persistent FileId.Volatile
_REQ: Final = struct.Struct("<HHIQQ")


def parse_flush_request(body: Buffer) -> tuple[int, int]:
    """Returns the FileId."""
    mv = body_view(body, 24, "FLUSH")
    _, _, _, p, v = _REQ.unpack_from(mv)
    return (p, v)


def pack_flush_request(file_id: tuple[int, int]) -> bytes:
    return _REQ.pack(24, 0, 0, *file_id)


FLUSH_RESPONSE: Final = struct.pack("<HH", 4, 0)
"""[MS-SMB2] 2.2.18: StructureSize 4, Reserved."""
