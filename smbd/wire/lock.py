"""[MS-SMB2] 2.2.26 SMB2 LOCK Request (2.2.26.1 SMB2_LOCK_ELEMENT) and 2.2.27 LOCK
Response."""

from __future__ import annotations

import struct
from enum import IntFlag
from typing import Final, NamedTuple

from smbd.wire._util import Buffer, body_view
from smbd.wire.errors import ParseError


class LockFlags(IntFlag):
    SHARED_LOCK = 0x00000001
    EXCLUSIVE_LOCK = 0x00000002
    UNLOCK = 0x00000004
    FAIL_IMMEDIATELY = 0x00000010


MAX_LOCK_COUNT: Final = 64 * 1024
"""A LOCK request carries at most what fits in a message; this caps the element list."""

# StructureSize LockCount LockSequence FileId.Persistent FileId.Volatile
_REQ: Final = struct.Struct("<HHIQQ")
# Offset Length Flags Reserved
_ELEM: Final = struct.Struct("<QQII")


class LockElement(NamedTuple):
    """[MS-SMB2] 2.2.26.1 SMB2_LOCK_ELEMENT."""

    offset: int
    length: int
    flags: int


class LockRequest(NamedTuple):
    """[MS-SMB2] 2.2.26. ``lock_sequence_number`` is the low 4 bits of the 32-bit field,
    ``lock_sequence_index`` the upper 28 (used for resilient/durable/persistent opens)."""

    lock_sequence_number: int
    lock_sequence_index: int
    file_id: tuple[int, int]
    locks: tuple[LockElement, ...]


def parse_lock_request(body: Buffer) -> LockRequest:
    """LockCount 0, or more elements than the body holds, is INVALID_PARAMETER."""
    mv = body_view(body, 48, "LOCK")
    _, count, seq, p, v = _REQ.unpack_from(mv)
    if count == 0:
        raise ParseError("LOCK with LockCount 0")
    if _REQ.size + count * _ELEM.size > len(mv):
        raise ParseError(f"LOCK with {count} elements beyond the message")
    raw = mv[_REQ.size : _REQ.size + count * _ELEM.size]
    locks = tuple(LockElement(o, n, f) for o, n, f, _ in _ELEM.iter_unpack(raw))
    return LockRequest(seq & 0xF, seq >> 4, (p, v), locks)


def pack_lock_request(r: LockRequest) -> bytes:
    seq = (r.lock_sequence_index << 4) | (r.lock_sequence_number & 0xF)
    return _REQ.pack(48, len(r.locks), seq, *r.file_id) + b"".join(
        _ELEM.pack(e.offset, e.length, e.flags, 0) for e in r.locks
    )


LOCK_RESPONSE: Final = struct.pack("<HH", 4, 0)
"""[MS-SMB2] 2.2.27: StructureSize 4, Reserved."""
