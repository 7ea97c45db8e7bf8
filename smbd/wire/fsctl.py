"""FSCTL control codes and the structures SMB2 IOCTL carries: [MS-SMB2] 2.2.31.1 /
2.2.32.1 SRV_COPYCHUNK, 2.2.32.3 SRV_REQUEST_RESUME_KEY, 2.2.31.4 / 2.2.32.6
VALIDATE_NEGOTIATE_INFO, 2.2.32.5 NETWORK_INTERFACE_INFO, 2.2.31.3 NETWORK_RESILIENCY_REQUEST;
[MS-FSCC] 2.3 FILE_ZERO_DATA_INFORMATION, FILE_ALLOCATED_RANGE_BUFFER, FILE_LEVEL_TRIM,
DUPLICATE_EXTENTS_DATA, FSCTL_QUERY_FILE_REGIONS and the offload read/write structures
(2.3.41-2.3.44, STORAGE_OFFLOAD_TOKEN 2.1.11).

Parsers raise ParseError(INVALID_PARAMETER) for inputs shorter than their structure or
whose counts run past the buffer.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from enum import IntEnum, IntFlag
from typing import Final, NamedTuple

from smbd.wire._util import Buffer
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus


class FsctlCode(IntEnum):
    """Control codes ([MS-FSCC] 2.3, [MS-SMB2] 2.2.31)."""

    FSCTL_DFS_GET_REFERRALS = 0x00060194
    FSCTL_DFS_GET_REFERRALS_EX = 0x000601B0
    FSCTL_GET_COMPRESSION = 0x0009003C
    FSCTL_IS_VOLUME_DIRTY = 0x00090078
    FSCTL_GET_OBJECT_ID = 0x0009009C
    FSCTL_SET_REPARSE_POINT = 0x000900A4
    FSCTL_GET_REPARSE_POINT = 0x000900A8
    FSCTL_DELETE_REPARSE_POINT = 0x000900AC
    FSCTL_CREATE_OR_GET_OBJECT_ID = 0x000900C0
    FSCTL_SET_SPARSE = 0x000900C4
    FSCTL_QUERY_ALLOCATED_RANGES = 0x000940CF
    FSCTL_SET_ZERO_DATA = 0x000980C8
    FSCTL_SET_COMPRESSION = 0x0009C040
    FSCTL_GET_INTEGRITY_INFORMATION = 0x0009027C
    FSCTL_SET_INTEGRITY_INFORMATION = 0x0009C280
    FSCTL_QUERY_FILE_REGIONS = 0x00090284
    FSCTL_FILE_LEVEL_TRIM = 0x00098208
    FSCTL_OFFLOAD_READ = 0x00094264
    FSCTL_OFFLOAD_WRITE = 0x00098268
    FSCTL_DUPLICATE_EXTENTS_TO_FILE = 0x00098344
    FSCTL_DUPLICATE_EXTENTS_TO_FILE_EX = 0x000983E8
    FSCTL_PIPE_PEEK = 0x0011400C
    FSCTL_PIPE_WAIT = 0x00110018
    FSCTL_PIPE_TRANSCEIVE = 0x0011C017
    FSCTL_SRV_REQUEST_RESUME_KEY = 0x00140078
    FSCTL_LMR_REQUEST_RESILIENCY = 0x001401D4
    FSCTL_QUERY_NETWORK_INTERFACE_INFO = 0x001401FC
    FSCTL_VALIDATE_NEGOTIATE_INFO = 0x00140204
    FSCTL_SRV_ENUMERATE_SNAPSHOTS = 0x00144064
    FSCTL_SRV_COPYCHUNK = 0x001440F2
    FSCTL_SRV_READ_HASH = 0x001441BB
    FSCTL_SRV_COPYCHUNK_WRITE = 0x001480F2


def _need(buf: Buffer, size: int, what: str) -> None:
    if len(buf) < size:
        raise ParseError(f"{what}: {len(buf)} bytes, need {size}", NTStatus.INVALID_PARAMETER)


# --- [MS-SMB2] 2.2.31.1 / 2.2.32.1 / 2.2.32.3 server-side copy -------------------------

RESUME_KEY_SIZE: Final = 24
COPYCHUNK_MAX_CHUNKS: Final = 256
COPYCHUNK_MAX_CHUNK_SIZE: Final = 1024 * 1024
COPYCHUNK_MAX_TOTAL_SIZE: Final = 16 * 1024 * 1024

_COPYCHUNK_HDR: Final = struct.Struct("<24sII")
_CHUNK: Final = struct.Struct("<QQII")
_COPYCHUNK_RESP: Final = struct.Struct("<III")
_RESUME_KEY_RESP: Final = struct.Struct("<24sI4s")


class Chunk(NamedTuple):
    """[MS-SMB2] 2.2.31.1.1 SRV_COPYCHUNK."""

    source_offset: int
    target_offset: int
    length: int


class CopyChunkRequest(NamedTuple):
    """[MS-SMB2] 2.2.31.1 SRV_COPYCHUNK_COPY."""

    source_key: bytes
    chunks: tuple[Chunk, ...]


def parse_copychunk_request(buf: Buffer) -> CopyChunkRequest:
    """ChunkCount elements must fit in the input. The limits (256 chunks, 1 MiB each, 16 MiB
    in total) are policy: the handler checks them with :func:`copychunk_within_limits` and
    answers INVALID_PARAMETER with :func:`pack_copychunk_limits`."""
    _need(buf, _COPYCHUNK_HDR.size, "SRV_COPYCHUNK_COPY")
    key, count, _ = _COPYCHUNK_HDR.unpack_from(buf)
    end = _COPYCHUNK_HDR.size + count * _CHUNK.size
    if end > len(buf):
        raise ParseError(f"SRV_COPYCHUNK_COPY: {count} chunks beyond the input")
    raw = memoryview(buf)[_COPYCHUNK_HDR.size : end]
    chunks = tuple(Chunk(s, t, n) for s, t, n, _ in _CHUNK.iter_unpack(raw))
    return CopyChunkRequest(bytes(key), chunks)


def pack_copychunk_request(r: CopyChunkRequest) -> bytes:
    return _COPYCHUNK_HDR.pack(r.source_key, len(r.chunks), 0) + b"".join(
        _CHUNK.pack(c.source_offset, c.target_offset, c.length, 0) for c in r.chunks
    )


def copychunk_within_limits(r: CopyChunkRequest) -> bool:
    """[MS-SMB2] 3.3.5.15.6: ChunkCount, every chunk Length and their sum within the
    server's limits (a zero-length chunk is invalid too)."""
    if len(r.chunks) > COPYCHUNK_MAX_CHUNKS:
        return False
    total = 0
    for c in r.chunks:
        if c.length == 0 or c.length > COPYCHUNK_MAX_CHUNK_SIZE:
            return False
        total += c.length
    return total <= COPYCHUNK_MAX_TOTAL_SIZE


class CopyChunkResponse(NamedTuple):
    """[MS-SMB2] 2.2.32.1 SRV_COPYCHUNK_RESPONSE."""

    chunks_written: int
    chunk_bytes_written: int
    total_bytes_written: int


def pack_copychunk_response(r: CopyChunkResponse) -> bytes:
    return _COPYCHUNK_RESP.pack(*r)


def parse_copychunk_response(buf: Buffer) -> CopyChunkResponse:
    _need(buf, 12, "SRV_COPYCHUNK_RESPONSE")
    return CopyChunkResponse(*_COPYCHUNK_RESP.unpack_from(buf))


def pack_copychunk_limits() -> bytes:
    """The response to a request over the limits: ChunksWritten = max chunk count,
    ChunkBytesWritten = max chunk size, TotalBytesWritten = max total."""
    return _COPYCHUNK_RESP.pack(
        COPYCHUNK_MAX_CHUNKS, COPYCHUNK_MAX_CHUNK_SIZE, COPYCHUNK_MAX_TOTAL_SIZE
    )


def pack_resume_key_response(resume_key: bytes) -> bytes:
    """[MS-SMB2] 2.2.32.3 SRV_REQUEST_RESUME_KEY response: ResumeKey (24), ContextLength
    (4, unused: 0) and 4 zero bytes of Context, as Windows and Samba send (32 bytes)."""
    if len(resume_key) != RESUME_KEY_SIZE:
        raise ValueError("resume key is 24 bytes")
    return _RESUME_KEY_RESP.pack(resume_key, 0, bytes(4))


def parse_resume_key_response(buf: Buffer) -> bytes:
    _need(buf, 28, "SRV_REQUEST_RESUME_KEY")
    return bytes(memoryview(buf)[:24])


# --- [MS-FSCC] sparse files ------------------------------------------------------------

_RANGE: Final = struct.Struct("<QQ")


def parse_set_sparse(buf: Buffer) -> bool:
    """[MS-FSCC] 2.3.64 FILE_SET_SPARSE_BUFFER: an optional SetSparse byte; no input means
    TRUE."""
    return True if len(buf) == 0 else buf[0] != 0


class ZeroDataInformation(NamedTuple):
    """[MS-FSCC] 2.3.67 FILE_ZERO_DATA_INFORMATION (FSCTL_SET_ZERO_DATA input)."""

    file_offset: int
    beyond_final_zero: int


def parse_zero_data(buf: Buffer) -> ZeroDataInformation:
    """FileOffset > BeyondFinalZero (or either with the sign bit) is INVALID_PARAMETER."""
    _need(buf, 16, "FILE_ZERO_DATA_INFORMATION")
    start, end = _RANGE.unpack_from(buf)
    if start >> 63 or end >> 63 or start > end:
        raise ParseError(f"zero data range {start}..{end}")
    return ZeroDataInformation(start, end)


def pack_zero_data(z: ZeroDataInformation) -> bytes:
    return _RANGE.pack(*z)


class AllocatedRange(NamedTuple):
    """[MS-FSCC] 2.3.46 FILE_ALLOCATED_RANGE_BUFFER."""

    file_offset: int
    length: int


def parse_allocated_range(buf: Buffer) -> AllocatedRange:
    """FSCTL_QUERY_ALLOCATED_RANGES input; negative offsets/lengths or an overflowing
    range are INVALID_PARAMETER."""
    _need(buf, 16, "FILE_ALLOCATED_RANGE_BUFFER")
    off, length = _RANGE.unpack_from(buf)
    if off >> 63 or length >> 63 or off + length > (1 << 63) - 1:
        raise ParseError(f"allocated range {off}+{length}")
    return AllocatedRange(off, length)


def pack_allocated_ranges(ranges: Sequence[AllocatedRange]) -> bytes:
    return b"".join(_RANGE.pack(*r) for r in ranges)


def parse_allocated_ranges(buf: Buffer) -> list[AllocatedRange]:
    if len(buf) % 16:
        raise ParseError("allocated range list length")
    return [AllocatedRange(*t) for t in _RANGE.iter_unpack(buf)]


# --- [MS-SMB2] 2.2.31.4 / 2.2.32.6 VALIDATE_NEGOTIATE_INFO ------------------------------

_VNEG_REQ: Final = struct.Struct("<I16sHH")
_VNEG_RESP: Final = struct.Struct("<I16sHH")


class ValidateNegotiateRequest(NamedTuple):
    capabilities: int
    guid: bytes
    security_mode: int
    dialects: tuple[int, ...]


def parse_validate_negotiate_request(buf: Buffer) -> ValidateNegotiateRequest:
    """DialectCount dialects must fit in the input (INVALID_PARAMETER otherwise; the caller
    then terminates the connection as 3.3.5.15.12 requires)."""
    _need(buf, _VNEG_REQ.size, "VALIDATE_NEGOTIATE_INFO")
    caps, guid, mode, count = _VNEG_REQ.unpack_from(buf)
    if count == 0 or _VNEG_REQ.size + 2 * count > len(buf):
        raise ParseError(f"VALIDATE_NEGOTIATE_INFO DialectCount {count}")
    dialects = struct.unpack_from(f"<{count}H", buf, _VNEG_REQ.size)
    return ValidateNegotiateRequest(caps, bytes(guid), mode, tuple(dialects))


def pack_validate_negotiate_request(r: ValidateNegotiateRequest) -> bytes:
    return _VNEG_REQ.pack(r.capabilities, r.guid, r.security_mode, len(r.dialects)) + struct.pack(
        f"<{len(r.dialects)}H", *r.dialects
    )


class ValidateNegotiateResponse(NamedTuple):
    capabilities: int
    guid: bytes
    security_mode: int
    dialect: int


def pack_validate_negotiate_response(r: ValidateNegotiateResponse) -> bytes:
    return _VNEG_RESP.pack(*r)


def parse_validate_negotiate_response(buf: Buffer) -> ValidateNegotiateResponse:
    _need(buf, 24, "VALIDATE_NEGOTIATE_INFO response")
    caps, guid, mode, dialect = _VNEG_RESP.unpack_from(buf)
    return ValidateNegotiateResponse(caps, bytes(guid), mode, dialect)


# --- [MS-SMB2] 2.2.32.5 NETWORK_INTERFACE_INFO ----------------------------------------


class InterfaceCapability(IntFlag):
    RSS_CAPABLE = 0x00000001
    RDMA_CAPABLE = 0x00000002


_NII: Final = struct.Struct("<IIIIQ")
NETWORK_INTERFACE_INFO_SIZE: Final = 152
AF_INET_SMB: Final = 0x0002
AF_INET6_SMB: Final = 0x0017


class NetworkInterface(NamedTuple):
    if_index: int
    capability: int
    link_speed: int
    address: ipaddress.IPv4Address | ipaddress.IPv6Address


def _sockaddr(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    if isinstance(addr, ipaddress.IPv4Address):
        raw = struct.pack("<HH", AF_INET_SMB, 0) + addr.packed + bytes(8)
    else:
        raw = struct.pack("<HHI", AF_INET6_SMB, 0, 0) + addr.packed + bytes(4)
    return raw.ljust(128, b"\0")


def pack_network_interfaces(ifaces: Sequence[NetworkInterface]) -> bytes:
    """A chain of 152-byte NETWORK_INTERFACE_INFO entries, Next = 152 except on the last.
    IfIndex must not be 0 (ValueError)."""
    out = bytearray()
    for i, it in enumerate(ifaces):
        if it.if_index == 0:
            raise ValueError("IfIndex must not be 0")
        nxt = 0 if i == len(ifaces) - 1 else NETWORK_INTERFACE_INFO_SIZE
        out += _NII.pack(nxt, it.if_index, it.capability, 0, it.link_speed)
        out += _sockaddr(it.address)
    return bytes(out)


def parse_network_interfaces(buf: Buffer) -> list[NetworkInterface]:
    mv = memoryview(buf)
    out: list[NetworkInterface] = []
    pos = 0
    while len(mv):
        if pos + NETWORK_INTERFACE_INFO_SIZE > len(mv):
            raise ParseError("NETWORK_INTERFACE_INFO truncated")
        nxt, idx, cap, _, speed = _NII.unpack_from(mv, pos)
        (family,) = struct.unpack_from("<H", mv, pos + 24)
        sa = pos + 24
        address: ipaddress.IPv4Address | ipaddress.IPv6Address
        if family == AF_INET_SMB:
            address = ipaddress.IPv4Address(bytes(mv[sa + 4 : sa + 8]))
        elif family == AF_INET6_SMB:
            address = ipaddress.IPv6Address(bytes(mv[sa + 8 : sa + 24]))
        else:
            raise ParseError(f"address family 0x{family:04x}")
        out.append(NetworkInterface(idx, cap, speed, address))
        if not nxt:
            break
        if nxt < NETWORK_INTERFACE_INFO_SIZE or nxt & 7:
            raise ParseError("NETWORK_INTERFACE_INFO Next")
        pos += nxt
    return out


# --- [MS-SMB2] 2.2.31.3 NETWORK_RESILIENCY_REQUEST ------------------------------------


def parse_resiliency_request(buf: Buffer) -> int:
    """Returns Timeout (ms). Shorter than 8 bytes: INVALID_PARAMETER."""
    _need(buf, 8, "NETWORK_RESILIENCY_REQUEST")
    return int(struct.unpack_from("<I", buf)[0])


# --- [MS-FSCC] 2.3.33 FSCTL_FILE_LEVEL_TRIM -------------------------------------------

_TRIM_HDR: Final = struct.Struct("<II")


class TrimRequest(NamedTuple):
    key: int
    ranges: tuple[tuple[int, int], ...]  # (offset, length)


def parse_file_level_trim(buf: Buffer) -> TrimRequest:
    _need(buf, _TRIM_HDR.size, "FILE_LEVEL_TRIM")
    key, count = _TRIM_HDR.unpack_from(buf)
    end = _TRIM_HDR.size + 16 * count
    if end > len(buf):
        raise ParseError(f"FILE_LEVEL_TRIM: {count} ranges beyond the input")
    raw = memoryview(buf)[_TRIM_HDR.size : end]
    return TrimRequest(key, tuple((o, n) for o, n in _RANGE.iter_unpack(raw)))


def pack_file_level_trim(r: TrimRequest) -> bytes:
    return _TRIM_HDR.pack(r.key, len(r.ranges)) + b"".join(_RANGE.pack(*x) for x in r.ranges)


def pack_file_level_trim_output(ranges_processed: int) -> bytes:
    """[MS-FSCC] 2.3.34 FILE_LEVEL_TRIM_OUTPUT: NumRangesProcessed."""
    return struct.pack("<I", ranges_processed)


# --- [MS-FSCC] 2.3.8 DUPLICATE_EXTENTS_DATA --------------------------------------------

_DUP: Final = struct.Struct("<QQQQQ")


class DuplicateExtents(NamedTuple):
    source_file_id: tuple[int, int]
    source_offset: int
    target_offset: int
    byte_count: int


def parse_duplicate_extents(buf: Buffer) -> DuplicateExtents:
    _need(buf, _DUP.size, "DUPLICATE_EXTENTS_DATA")
    p, v, src, dst, n = _DUP.unpack_from(buf)
    return DuplicateExtents((p, v), src, dst, n)


# --- [MS-FSCC] 2.3.56 FSCTL_QUERY_FILE_REGIONS ------------------------------------------

FILE_REGION_USAGE_VALID_CACHED_DATA: Final = 0x00000001
FILE_REGION_USAGE_VALID_NONCACHED_DATA: Final = 0x00000002
_REGION_IN: Final = struct.Struct("<QQII")
_REGION_OUT_HDR: Final = struct.Struct("<IIII")


def parse_query_file_regions(buf: Buffer) -> tuple[int, int, int] | None:
    """Input FILE_REGION_INPUT (24 bytes) or none (the whole file). Returns
    (offset, length, desired usage)."""
    if len(buf) == 0:
        return None
    _need(buf, _REGION_IN.size, "FILE_REGION_INPUT")
    off, length, usage, _ = _REGION_IN.unpack_from(buf)
    return (off, length, usage)


def pack_query_file_regions_output(
    regions: Sequence[tuple[int, int, int]], total: int | None = None
) -> bytes:
    """FILE_REGION_OUTPUT with FILE_REGION_INFO entries (offset, length, usage)."""
    n = len(regions)
    return _REGION_OUT_HDR.pack(0, n if total is None else total, n, 0) + b"".join(
        _REGION_IN.pack(o, ln, u, 0) for o, ln, u in regions
    )


# --- [MS-FSCC] 2.3.41-2.3.44 offload read/write, 2.1.11 STORAGE_OFFLOAD_TOKEN -----------

OFFLOAD_TOKEN_SIZE: Final = 512
STORAGE_OFFLOAD_TOKEN_TYPE_ZERO_DATA: Final = 0xFFFF0001
OFFLOAD_READ_FLAG_ALL_ZERO_BEYOND_CURRENT_RANGE: Final = 0x00000001

_OFFLOAD_READ_IN: Final = struct.Struct("<IIIIQQ")
_OFFLOAD_READ_OUT: Final = struct.Struct("<IIQ512s")
_OFFLOAD_WRITE_IN: Final = struct.Struct("<IIQQQ512s")
_OFFLOAD_WRITE_OUT: Final = struct.Struct("<IIQ")


class OffloadReadInput(NamedTuple):
    flags: int
    token_time_to_live: int
    file_offset: int
    copy_length: int


def parse_offload_read_input(buf: Buffer) -> OffloadReadInput:
    """FSCTL_OFFLOAD_READ_INPUT (32 bytes); Size must say 32."""
    _need(buf, _OFFLOAD_READ_IN.size, "FSCTL_OFFLOAD_READ_INPUT")
    size, flags, ttl, _, off, length = _OFFLOAD_READ_IN.unpack_from(buf)
    if size != 32:
        raise ParseError(f"FSCTL_OFFLOAD_READ_INPUT Size {size}")
    return OffloadReadInput(flags, ttl, off, length)


def pack_offload_read_input(r: OffloadReadInput) -> bytes:
    return _OFFLOAD_READ_IN.pack(32, r.flags, r.token_time_to_live, 0, r.file_offset, r.copy_length)


def pack_offload_read_output(flags: int, transfer_length: int, token: bytes) -> bytes:
    """FSCTL_OFFLOAD_READ_OUTPUT (528 bytes)."""
    if len(token) != OFFLOAD_TOKEN_SIZE:
        raise ValueError("offload token is 512 bytes")
    return _OFFLOAD_READ_OUT.pack(528, flags, transfer_length, token)


def parse_offload_read_output(buf: Buffer) -> tuple[int, int, bytes]:
    _need(buf, _OFFLOAD_READ_OUT.size, "FSCTL_OFFLOAD_READ_OUTPUT")
    _, flags, length, token = _OFFLOAD_READ_OUT.unpack_from(buf)
    return (flags, length, bytes(token))


class OffloadWriteInput(NamedTuple):
    flags: int
    file_offset: int
    copy_length: int
    transfer_offset: int
    token: bytes


def parse_offload_write_input(buf: Buffer) -> OffloadWriteInput:
    """FSCTL_OFFLOAD_WRITE_INPUT (544 bytes); Size must say 544."""
    _need(buf, _OFFLOAD_WRITE_IN.size, "FSCTL_OFFLOAD_WRITE_INPUT")
    size, flags, off, length, xfer, token = _OFFLOAD_WRITE_IN.unpack_from(buf)
    if size != 544:
        raise ParseError(f"FSCTL_OFFLOAD_WRITE_INPUT Size {size}")
    return OffloadWriteInput(flags, off, length, xfer, bytes(token))


def pack_offload_write_input(r: OffloadWriteInput) -> bytes:
    return _OFFLOAD_WRITE_IN.pack(
        544, r.flags, r.file_offset, r.copy_length, r.transfer_offset, r.token
    )


def pack_offload_write_output(length_written: int, flags: int = 0) -> bytes:
    """FSCTL_OFFLOAD_WRITE_OUTPUT (16 bytes)."""
    return _OFFLOAD_WRITE_OUT.pack(16, flags, length_written)


def parse_offload_write_output(buf: Buffer) -> int:
    _need(buf, 16, "FSCTL_OFFLOAD_WRITE_OUTPUT")
    return int(_OFFLOAD_WRITE_OUT.unpack_from(buf)[2])


class OffloadToken(NamedTuple):
    """[MS-FSCC] 2.1.11 STORAGE_OFFLOAD_TOKEN: TokenType and TokenIdLength are BIG-endian."""

    token_type: int
    token_id: bytes


def pack_offload_token(t: OffloadToken) -> bytes:
    if len(t.token_id) > 504:
        raise ValueError("token id at most 504 bytes")
    return struct.pack(">IHH", t.token_type, 0, len(t.token_id)) + t.token_id.ljust(504, b"\0")


def parse_offload_token(buf: Buffer) -> OffloadToken:
    _need(buf, OFFLOAD_TOKEN_SIZE, "STORAGE_OFFLOAD_TOKEN")
    ttype, _, idlen = struct.unpack_from(">IHH", buf)
    if idlen > 504:
        raise ParseError("offload token id length", NTStatus.INVALID_TOKEN)
    return OffloadToken(ttype, bytes(memoryview(buf)[8 : 8 + idlen]))


# --- small fixed outputs --------------------------------------------------------------

COMPRESSION_FORMAT_NONE: Final = 0x0000
COMPRESSION_FORMAT_DEFAULT: Final = 0x0001
COMPRESSION_FORMAT_LZNT1: Final = 0x0002


def pack_get_compression(state: int = COMPRESSION_FORMAT_NONE) -> bytes:
    """FSCTL_GET_COMPRESSION output: CompressionState (2)."""
    return struct.pack("<H", state)


def parse_set_compression(buf: Buffer) -> int:
    _need(buf, 2, "FSCTL_SET_COMPRESSION")
    return int(struct.unpack_from("<H", buf)[0])


def pack_integrity_information(
    checksum_algorithm: int = 0, flags: int = 0, chunk_size: int = 0, cluster_size: int = 4096
) -> bytes:
    """FSCTL_GET_INTEGRITY_INFORMATION_BUFFER (16 bytes)."""
    return struct.pack("<HHIII", checksum_algorithm, 0, flags, chunk_size, cluster_size)


def pack_object_id_buffer(object_id: bytes, birth_volume_id: bytes = bytes(16)) -> bytes:
    """[MS-FSCC] 2.1.3.1 FILE_OBJECTID_BUFFER type 1 (64 bytes)."""
    if len(object_id) != 16 or len(birth_volume_id) != 16:
        raise ValueError("object ids are 16 bytes")
    return object_id + birth_volume_id + object_id + bytes(16)
