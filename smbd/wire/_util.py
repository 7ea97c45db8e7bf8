"""Bounds-checked helpers shared by the WIRE codecs (private to smbd.wire).

Parsers take the request's *body* (from StructureSize up to the next command, as
``Request.body`` holds it). Offsets inside SMB2 bodies count from the start of the SMB2
header, which lies ``HEADER_SIZE`` bytes before the body; :func:`region` converts and
checks every offset/length against the body before slicing.
"""

from __future__ import annotations

import struct
from typing import Final

from smbd.wire.errors import ParseError
from smbd.wire.header import HEADER_SIZE
from smbd.wire.status import NTStatus

Buffer = bytes | bytearray | memoryview

_U16: Final = struct.Struct("<H")


def body_view(body: Buffer, structure_size: int, what: str) -> memoryview:
    """``body`` as a memoryview, checked to hold the fixed part and to carry the expected
    StructureSize. Raises ParseError(INVALID_PARAMETER)."""
    mv = body if isinstance(body, memoryview) else memoryview(body)
    fixed = structure_size & ~1
    if len(mv) < fixed:
        raise ParseError(f"{what}: body shorter than {fixed} bytes")
    (size,) = _U16.unpack_from(mv, 0)
    if size != structure_size:
        raise ParseError(f"{what}: StructureSize {size}, expected {structure_size}")
    return mv


def region(
    body: memoryview,
    offset: int,
    length: int,
    what: str,
    *,
    minimum: int,
    status: int = NTStatus.INVALID_PARAMETER,
) -> memoryview:
    """The ``length`` bytes at header-relative ``offset``, after checking they lie inside
    ``body`` and not before ``minimum`` (a body offset: the end of the fixed part). A zero
    length yields an empty view and the offset is not checked (clients put arbitrary
    offsets beside zero lengths)."""
    if length == 0:
        return body[0:0]
    start = offset - HEADER_SIZE
    if start < minimum or start + length > len(body):
        raise ParseError(f"{what}: offset {offset} length {length} outside the message", status)
    return body[start : start + length]


def decode_utf16(raw: memoryview | bytes, what: str) -> str:
    """UTF-16LE as SMB carries names. Odd lengths are INVALID_PARAMETER; unpaired
    surrogates (which no POSIX path can hold) are OBJECT_NAME_INVALID."""
    if len(raw) & 1:
        raise ParseError(f"{what}: odd UTF-16 length {len(raw)}")
    try:
        return bytes(raw).decode("utf-16-le")
    except UnicodeDecodeError:
        raise ParseError(f"{what}: invalid UTF-16", NTStatus.OBJECT_NAME_INVALID) from None


def encode_utf16(text: str) -> bytes:
    return text.encode("utf-16-le", "surrogatepass")


def pad8(n: int) -> int:
    """``n`` rounded up to a multiple of 8."""
    return (n + 7) & ~7


def pad4(n: int) -> int:
    return (n + 3) & ~3


def guid_bytes(value: bytes, what: str) -> bytes:
    if len(value) != 16:
        raise ValueError(f"{what} must be 16 bytes")
    return value
