"""[MS-SMB2] 2.2.5 SESSION_SETUP Request, 2.2.6 SESSION_SETUP Response,
2.2.7 LOGOFF Request, 2.2.8 LOGOFF Response."""

from __future__ import annotations

import struct
from typing import NamedTuple

from smbd.wire.errors import ParseError
from smbd.wire.header import HEADER_SIZE

SESSION_FLAG_BINDING = 0x01

# StructureSize, Flags, SecurityMode, Capabilities, Channel, SecurityBufferOffset,
# SecurityBufferLength, PreviousSessionId
_REQ = struct.Struct("<HBBIIHHQ")
# StructureSize, SessionFlags, SecurityBufferOffset, SecurityBufferLength
_RESP = struct.Struct("<HHHH")


class SessionSetupRequest(NamedTuple):
    flags: int
    security_mode: int
    capabilities: int
    channel: int
    previous_session_id: int
    token: bytes

    @property
    def binding(self) -> bool:
        return bool(self.flags & SESSION_FLAG_BINDING)


def _buffer(body: memoryview | bytes, offset: int, length: int, fixed: int, what: str) -> bytes:
    if length == 0:
        return b""
    start = offset - HEADER_SIZE
    if start < fixed or start + length > len(body):
        raise ParseError(f"{what} buffer (offset {offset}, length {length}) beyond the message")
    return bytes(body[start : start + length])


def parse_session_setup_request(body: memoryview | bytes) -> SessionSetupRequest:
    if len(body) < _REQ.size:
        raise ParseError("short SESSION_SETUP request")
    size, flags, mode, caps, channel, off, length, prev = _REQ.unpack_from(body, 0)
    if size != 25:
        raise ParseError(f"SESSION_SETUP StructureSize {size}")
    token = _buffer(body, off, length, _REQ.size, "SESSION_SETUP security")
    return SessionSetupRequest(flags, mode, caps, channel, prev, token)


def pack_session_setup_request(
    token: bytes,
    *,
    flags: int = 0,
    security_mode: int = 1,
    capabilities: int = 0,
    channel: int = 0,
    previous_session_id: int = 0,
) -> bytes:
    off = HEADER_SIZE + _REQ.size
    return (
        _REQ.pack(
            25, flags, security_mode, capabilities, channel, off, len(token), previous_session_id
        )
        + token
    )


class SessionSetupResponse(NamedTuple):
    session_flags: int
    token: bytes


def pack_session_setup_response(session_flags: int, token: bytes) -> bytes:
    off = HEADER_SIZE + _RESP.size if token else 0
    return _RESP.pack(9, session_flags, off, len(token)) + (token or b"")


def parse_session_setup_response(body: memoryview | bytes) -> SessionSetupResponse:
    if len(body) < _RESP.size:
        raise ParseError("short SESSION_SETUP response")
    size, flags, off, length = _RESP.unpack_from(body, 0)
    if size != 9:
        raise ParseError(f"SESSION_SETUP response StructureSize {size}")
    return SessionSetupResponse(flags, _buffer(body, off, length, _RESP.size, "security"))
