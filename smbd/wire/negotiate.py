"""[MS-SMB2] 2.2.3 NEGOTIATE Request, 2.2.3.1 negotiate contexts, 2.2.4 NEGOTIATE Response,
and [MS-SMB] 2.2.4.5.1 / [MS-SMB2] 3.3.5.3.1 the SMB1 multi-protocol negotiate that older
clients send first.

Offsets on the wire count from the start of the SMB2 header; the parsers here take the
body (the bytes after the 64-byte header) and convert.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from smbd.wire.constants import SMB1_PROTOCOL_ID
from smbd.wire.errors import ParseError
from smbd.wire.header import HEADER_SIZE

# Negotiate context types ([MS-SMB2] 2.2.3.1)
PREAUTH_INTEGRITY_CAPABILITIES = 0x0001
ENCRYPTION_CAPABILITIES = 0x0002
COMPRESSION_CAPABILITIES = 0x0003
NETNAME_NEGOTIATE_CONTEXT_ID = 0x0005
TRANSPORT_CAPABILITIES = 0x0006
RDMA_TRANSFORM_CAPABILITIES = 0x0007
SIGNING_CAPABILITIES = 0x0008

HASH_SHA512 = 0x0001

MAX_DIALECTS = 64
MAX_CONTEXTS = 64

# StructureSize, DialectCount, SecurityMode, Reserved, Capabilities, ClientGuid,
# (NegotiateContextOffset, NegotiateContextCount, Reserved2) | ClientStartTime
_REQ = struct.Struct("<HHHHI16sIHH")
_RESP = struct.Struct("<HHHH16sIIIIQQHHI")
_CTX = struct.Struct("<HHI")
_U16 = struct.Struct("<H")
_U16X2 = struct.Struct("<HH")
SMB2_NEGOTIATE_RESPONSE_SIZE = 65
_RESP_FIXED = 64  # the fixed part; Buffer follows at header offset 128


class NegotiateContext(NamedTuple):
    type: int
    data: bytes


class NegotiateRequest(NamedTuple):
    """[MS-SMB2] 2.2.3. ``contexts`` is empty unless 3.1.1 is offered."""

    security_mode: int
    capabilities: int
    client_guid: bytes
    dialects: tuple[int, ...]
    contexts: tuple[NegotiateContext, ...]


def parse_negotiate_request(body: memoryview | bytes) -> NegotiateRequest:
    """Parse a NEGOTIATE request body. Raises ParseError (INVALID_PARAMETER)."""
    if len(body) < _REQ.size:
        raise ParseError("short NEGOTIATE request")
    (size, count, mode, _r, caps, guid, ctx_off, ctx_count, _r2) = _REQ.unpack_from(body, 0)
    if size != 36:
        raise ParseError(f"NEGOTIATE StructureSize {size}")
    if count == 0:
        raise ParseError("NEGOTIATE with DialectCount 0")
    if count > MAX_DIALECTS:
        raise ParseError(f"NEGOTIATE with {count} dialects")
    end = _REQ.size + 2 * count
    if end > len(body):
        raise ParseError("NEGOTIATE dialects beyond the message")
    dialects = struct.unpack_from(f"<{count}H", body, _REQ.size)
    contexts: tuple[NegotiateContext, ...] = ()
    if 0x0311 in dialects and ctx_count:
        contexts = _parse_contexts(body, ctx_off - HEADER_SIZE, ctx_count, end)
    return NegotiateRequest(mode, caps, bytes(guid), dialects, contexts)


def _parse_contexts(
    body: memoryview | bytes, offset: int, count: int, min_offset: int
) -> tuple[NegotiateContext, ...]:
    if count > MAX_CONTEXTS:
        raise ParseError(f"{count} negotiate contexts")
    if offset < min_offset or offset % 8:
        raise ParseError(f"NegotiateContextOffset {offset + HEADER_SIZE} invalid")
    out = []
    pos = offset
    for i in range(count):
        if pos + _CTX.size > len(body):
            raise ParseError("negotiate context beyond the message")
        ctype, length, _r = _CTX.unpack_from(body, pos)
        start = pos + _CTX.size
        if start + length > len(body):
            raise ParseError("negotiate context data beyond the message")
        out.append(NegotiateContext(ctype, bytes(body[start : start + length])))
        pos = start + length
        if i + 1 < count:
            pos = (pos + 7) & ~7
    return tuple(out)


class PreauthCapabilities(NamedTuple):
    """[MS-SMB2] 2.2.3.1.1"""

    hash_algorithms: tuple[int, ...]
    salt: bytes


def parse_preauth_capabilities(data: bytes) -> PreauthCapabilities:
    if len(data) < 4:
        raise ParseError("short PREAUTH_INTEGRITY_CAPABILITIES")
    count, salt_len = _U16X2.unpack_from(data, 0)
    if count == 0:
        raise ParseError("PREAUTH_INTEGRITY_CAPABILITIES with no algorithm")
    end = 4 + 2 * count
    if end + salt_len > len(data):
        raise ParseError("PREAUTH_INTEGRITY_CAPABILITIES beyond its context")
    algs = struct.unpack_from(f"<{count}H", data, 4)
    return PreauthCapabilities(algs, data[end : end + salt_len])


def pack_preauth_capabilities(algorithm: int, salt: bytes) -> bytes:
    return _U16X2.pack(1, len(salt)) + _U16.pack(algorithm) + salt


def _parse_id_list(data: bytes, what: str) -> tuple[int, ...]:
    if len(data) < 2:
        raise ParseError(f"short {what}")
    (count,) = _U16.unpack_from(data, 0)
    if count == 0:
        raise ParseError(f"{what} with an empty list")
    if 2 + 2 * count > len(data):
        raise ParseError(f"{what} list beyond its context")
    return struct.unpack_from(f"<{count}H", data, 2)


def parse_encryption_capabilities(data: bytes) -> tuple[int, ...]:
    """[MS-SMB2] 2.2.3.1.2: the client's ciphers, in its order of preference."""
    return _parse_id_list(data, "ENCRYPTION_CAPABILITIES")


def parse_signing_capabilities(data: bytes) -> tuple[int, ...]:
    """[MS-SMB2] 2.2.3.1.7: the client's signing algorithms, in its order of preference."""
    return _parse_id_list(data, "SIGNING_CAPABILITIES")


def pack_id_list(ids: Sequence[int]) -> bytes:
    """ENCRYPTION_CAPABILITIES / SIGNING_CAPABILITIES data: Count then the ids."""
    return _U16.pack(len(ids)) + struct.pack(f"<{len(ids)}H", *ids)


def pack_negotiate_request(
    dialects: Sequence[int],
    *,
    security_mode: int = 1,
    capabilities: int = 0,
    client_guid: bytes = bytes(16),
    contexts: Sequence[NegotiateContext] = (),
) -> bytes:
    """Build a NEGOTIATE request body (for tests and the in-project client)."""
    fixed_end = HEADER_SIZE + _REQ.size + 2 * len(dialects)
    ctx_off = (fixed_end + 7) & ~7 if contexts else 0
    out = bytearray(
        _REQ.pack(
            36,
            len(dialects),
            security_mode,
            0,
            capabilities,
            client_guid,
            ctx_off,
            len(contexts),
            0,
        )
    )
    out += struct.pack(f"<{len(dialects)}H", *dialects)
    if contexts:
        out += bytes(ctx_off - fixed_end)
        out += _pack_contexts(contexts)
    return bytes(out)


def _pack_contexts(contexts: Sequence[NegotiateContext]) -> bytes:
    out = bytearray()
    for i, ctx in enumerate(contexts):
        out += _CTX.pack(ctx.type, len(ctx.data), 0) + ctx.data
        if i + 1 < len(contexts):
            out += bytes(-len(out) % 8)
    return bytes(out)


class NegotiateResponse(NamedTuple):
    """[MS-SMB2] 2.2.4"""

    security_mode: int
    dialect: int
    server_guid: bytes
    capabilities: int
    max_transact_size: int
    max_read_size: int
    max_write_size: int
    system_time: int  # FILETIME
    server_start_time: int
    security_buffer: bytes
    contexts: tuple[NegotiateContext, ...] = ()


def pack_negotiate_response(r: NegotiateResponse) -> bytes:
    """Build a NEGOTIATE response body. The security buffer sits at header offset 128;
    contexts (3.1.1 only) follow it, 8-byte aligned."""
    buf_off = HEADER_SIZE + _RESP_FIXED
    buf_end = buf_off + len(r.security_buffer)
    ctx_off = (buf_end + 7) & ~7 if r.contexts else 0
    out = bytearray(
        _RESP.pack(
            SMB2_NEGOTIATE_RESPONSE_SIZE,
            r.security_mode,
            r.dialect,
            len(r.contexts),
            r.server_guid,
            r.capabilities,
            r.max_transact_size,
            r.max_read_size,
            r.max_write_size,
            r.system_time,
            r.server_start_time,
            buf_off if r.security_buffer else 0,
            len(r.security_buffer),
            ctx_off,
        )
    )
    out += r.security_buffer
    if r.contexts:
        out += bytes(ctx_off - buf_end)
        out += _pack_contexts(r.contexts)
    elif not r.security_buffer:
        out += b"\0"  # the variable part is at least one byte (StructureSize 65)
    return bytes(out)


def parse_negotiate_response(body: memoryview | bytes) -> NegotiateResponse:
    """Parse a NEGOTIATE response body (for tests and the in-project client)."""
    if len(body) < _RESP.size:
        raise ParseError("short NEGOTIATE response")
    (size, mode, dialect, ctx_count, guid, caps, mt, mr, mw, st, sst, boff, blen, coff) = (
        _RESP.unpack_from(body, 0)
    )
    if size != SMB2_NEGOTIATE_RESPONSE_SIZE:
        raise ParseError(f"NEGOTIATE response StructureSize {size}")
    sec = b""
    if blen:
        start = boff - HEADER_SIZE
        if start < _RESP.size or start + blen > len(body):
            raise ParseError("security buffer beyond the message")
        sec = bytes(body[start : start + blen])
    contexts: tuple[NegotiateContext, ...] = ()
    if dialect == 0x0311 and ctx_count:
        contexts = _parse_contexts(body, coff - HEADER_SIZE, ctx_count, _RESP.size)
    return NegotiateResponse(mode, dialect, bytes(guid), caps, mt, mr, mw, st, sst, sec, contexts)


# --------------------------------------------------------------------------------------
# SMB1 multi-protocol negotiate ([MS-SMB] 2.2.4.5.1, [MS-CIFS] 2.2.4.52.1)

SMB1_COM_NEGOTIATE = 0x72
_SMB1_HEADER_SIZE = 32
SMB2_DIALECT_STRING_002 = "SMB 2.002"
SMB2_DIALECT_STRING_WILDCARD = "SMB 2.???"


def parse_smb1_negotiate(msg: memoryview | bytes) -> tuple[str, ...]:
    """The dialect strings of an SMB1 NEGOTIATE request (the whole message). Raises
    ParseError when the message is not one; the caller disconnects in that case."""
    if len(msg) < _SMB1_HEADER_SIZE + 3 or bytes(msg[:4]) != SMB1_PROTOCOL_ID:
        raise ParseError("not an SMB1 message", disconnect=True)
    if msg[4] != SMB1_COM_NEGOTIATE:
        raise ParseError("SMB1 command other than NEGOTIATE", disconnect=True)
    word_count = msg[_SMB1_HEADER_SIZE]
    pos = _SMB1_HEADER_SIZE + 1 + 2 * word_count
    if pos + 2 > len(msg):
        raise ParseError("short SMB1 NEGOTIATE", disconnect=True)
    (byte_count,) = _U16.unpack_from(msg, pos)
    pos += 2
    data = bytes(msg[pos : pos + byte_count])
    if len(data) != byte_count:
        raise ParseError("SMB1 NEGOTIATE ByteCount beyond the message", disconnect=True)
    names = []
    i = 0
    while i < len(data):
        if data[i] != 0x02:  # BufferFormat: dialect string
            raise ParseError("bad SMB1 dialect buffer format", disconnect=True)
        end = data.find(b"\0", i + 1)
        if end < 0:
            raise ParseError("unterminated SMB1 dialect string", disconnect=True)
        names.append(data[i + 1 : end].decode("ascii", "replace"))
        i = end + 1
    return tuple(names)


def pack_smb1_negotiate(dialects: Sequence[str]) -> bytes:
    """Build an SMB1 NEGOTIATE request (for tests)."""
    data = b"".join(b"\x02" + d.encode("ascii") + b"\0" for d in dialects)
    header = SMB1_PROTOCOL_ID + bytes([SMB1_COM_NEGOTIATE]) + bytes(4) + b"\x18" + b"\x53\xc8"
    header = header.ljust(_SMB1_HEADER_SIZE, b"\0")
    return header + b"\0" + _U16.pack(len(data)) + data


def filetime(unix_seconds: float) -> int:
    """Seconds since 1970 -> FILETIME (100 ns units since 1601)."""
    return int((unix_seconds + 11644473600) * 10_000_000)


__all__ = [
    "ENCRYPTION_CAPABILITIES",
    "HASH_SHA512",
    "PREAUTH_INTEGRITY_CAPABILITIES",
    "SIGNING_CAPABILITIES",
    "NegotiateContext",
    "NegotiateRequest",
    "NegotiateResponse",
    "PreauthCapabilities",
    "filetime",
    "pack_id_list",
    "pack_negotiate_request",
    "pack_negotiate_response",
    "pack_preauth_capabilities",
    "pack_smb1_negotiate",
    "parse_encryption_capabilities",
    "parse_negotiate_request",
    "parse_negotiate_response",
    "parse_preauth_capabilities",
    "parse_signing_capabilities",
    "parse_smb1_negotiate",
]
