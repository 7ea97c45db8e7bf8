"""The four-byte bodies: [MS-SMB2] 2.2.7/2.2.8 LOGOFF, 2.2.11/2.2.12 TREE_DISCONNECT,
2.2.28/2.2.29 ECHO, 2.2.30 CANCEL. StructureSize 4, Reserved 2."""

from __future__ import annotations

import struct

from smbd.wire.errors import ParseError

_SIMPLE = struct.Struct("<HH")

SIMPLE_BODY = _SIMPLE.pack(4, 0)
"""The body of LOGOFF, TREE_DISCONNECT, ECHO and CANCEL, requests and responses alike."""


def parse_simple(body: memoryview | bytes, what: str = "request") -> None:
    """Check a LOGOFF / TREE_DISCONNECT / ECHO / CANCEL body ([MS-SMB2] 3.3.5.2.2: the
    StructureSize must match). Reserved is ignored."""
    if len(body) < _SIMPLE.size:
        raise ParseError(f"short {what}")
    size, _reserved = _SIMPLE.unpack_from(body, 0)
    if size != 4:
        raise ParseError(f"{what} StructureSize {size}")
