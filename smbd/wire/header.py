"""[MS-SMB2] 2.2.1 SMB2 Packet Header (sync 2.2.1.2 and async 2.2.1.1) and 2.2.2 ERROR Response."""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from smbd.wire.constants import PROTOCOL_ID, Command, HeaderFlags
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus

HEADER_SIZE = 64
SIGNATURE_OFFSET = 48

# ProtocolId, StructureSize, CreditCharge, Status/ChannelSequence, Command, Credits,
# Flags, NextCommand, MessageId, (Reserved, TreeId) | AsyncId, SessionId, Signature
_HEADER = struct.Struct("<4sHHIHHIIQQQ16s")
_SYNC_TAIL = struct.Struct("<II")


class Header(NamedTuple):
    """One SMB2 header. For an async header ``async_id`` is set and ``tree_id`` is 0.

    ``status`` holds the Status field; in 3.x requests it is ChannelSequence (low 16 bits)
    plus Reserved.
    """

    credit_charge: int
    status: int
    command: int
    credits: int
    flags: int
    next_command: int
    message_id: int
    async_id: int
    tree_id: int
    session_id: int
    signature: bytes

    @property
    def is_async(self) -> bool:
        return bool(self.flags & HeaderFlags.ASYNC_COMMAND)

    @property
    def channel_sequence(self) -> int:
        return self.status & 0xFFFF


# a plain int: ``int & IntFlag`` goes to IntFlag.__rand__ and builds a flag object per call
_ASYNC_COMMAND: Final = int(HeaderFlags.ASYNC_COMMAND)


def parse_header(buf: memoryview | bytes | bytearray, offset: int = 0) -> Header:
    """[MS-SMB2] 2.2.1: parse the 64-byte header at ``offset``."""
    if len(buf) - offset < HEADER_SIZE:
        raise ParseError("short SMB2 header", NTStatus.INVALID_PARAMETER, disconnect=True)
    (
        proto,
        size,
        charge,
        status,
        command,
        credits,
        flags,
        next_command,
        message_id,
        word5,
        session_id,
        signature,
    ) = _HEADER.unpack_from(buf, offset)
    if proto != PROTOCOL_ID or size != HEADER_SIZE:
        raise ParseError("not an SMB2 header", NTStatus.INVALID_PARAMETER, disconnect=True)
    if flags & _ASYNC_COMMAND:
        async_id, tree_id = word5, 0
    else:
        async_id, tree_id = 0, word5 >> 32
    return Header(
        charge,
        status,
        command,
        credits,
        flags,
        next_command,
        message_id,
        async_id,
        tree_id,
        session_id,
        signature,
    )


def pack_header(
    h: Header,
    flags: int | None = None,
    next_command: int | None = None,
    signature: bytes | None = None,
) -> bytearray:
    """Build a 64-byte header (signature as given; signing fills it in afterwards).
    ``flags``, ``next_command`` and ``signature``, when given, replace the header's own
    (what laying out a response chain sets, without building another Header)."""
    if flags is None:
        flags = int(h.flags)
    word5 = h.async_id if flags & _ASYNC_COMMAND else (h.tree_id << 32)
    out = bytearray(HEADER_SIZE)
    _HEADER.pack_into(
        out,
        0,
        PROTOCOL_ID,
        HEADER_SIZE,
        h.credit_charge,
        h.status,
        h.command,
        h.credits,
        flags,
        h.next_command if next_command is None else next_command,
        h.message_id,
        word5,
        h.session_id,
        h.signature if signature is None else signature,
    )
    return out


_ERROR = struct.Struct("<HBBI")


def pack_error_body(error_data: bytes = b"", context_count: int = 0) -> bytes:
    """[MS-SMB2] 2.2.2 SMB2 ERROR Response: StructureSize 9, ErrorContextCount, Reserved,
    ByteCount, ErrorData (at least one byte is sent when ByteCount is 0)."""
    return _ERROR.pack(9, context_count, 0, len(error_data)) + (error_data or b"\0")


def command_name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"0x{command:04x}"
