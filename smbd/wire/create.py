"""[MS-SMB2] 2.2.13 SMB2 CREATE Request, 2.2.14 SMB2 CREATE Response and the create
contexts of 2.2.13.2 / 2.2.14.2.

Request parsing hands the create contexts over as ``(name, data)`` pairs whose ``data``
is a view into the request; the per-context codecs below turn those into records.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from enum import IntEnum, IntFlag
from typing import Final, NamedTuple

from smbd.wire._util import Buffer, body_view, decode_utf16, encode_utf16, pad8, region
from smbd.wire.errors import ParseError
from smbd.wire.fscc import FileAttributes
from smbd.wire.header import HEADER_SIZE
from smbd.wire.status import NTStatus

__all__ = [
    "AccessMask",
    "CreateAction",
    "CreateContext",
    "CreateDisposition",
    "CreateOptions",
    "CreateRequest",
    "CreateResponse",
    "FileAttributes",
    "ImpersonationLevel",
    "LeaseFlags",
    "LeaseState",
    "OplockLevel",
    "ShareAccess",
]


class OplockLevel(IntEnum):
    """[MS-SMB2] 2.2.13 RequestedOplockLevel / 2.2.14 OplockLevel."""

    NONE = 0x00
    II = 0x01
    EXCLUSIVE = 0x08
    BATCH = 0x09
    LEASE = 0xFF


class ImpersonationLevel(IntEnum):
    ANONYMOUS = 0
    IDENTIFICATION = 1
    IMPERSONATION = 2
    DELEGATE = 3


class CreateDisposition(IntEnum):
    SUPERSEDE = 0
    OPEN = 1
    CREATE = 2
    OPEN_IF = 3
    OVERWRITE = 4
    OVERWRITE_IF = 5


class CreateOptions(IntFlag):
    DIRECTORY_FILE = 0x00000001
    WRITE_THROUGH = 0x00000002
    SEQUENTIAL_ONLY = 0x00000004
    NO_INTERMEDIATE_BUFFERING = 0x00000008
    SYNCHRONOUS_IO_ALERT = 0x00000010
    SYNCHRONOUS_IO_NONALERT = 0x00000020
    NON_DIRECTORY_FILE = 0x00000040
    COMPLETE_IF_OPLOCKED = 0x00000100
    NO_EA_KNOWLEDGE = 0x00000200
    OPEN_REMOTE_INSTANCE = 0x00000400
    RANDOM_ACCESS = 0x00000800
    DELETE_ON_CLOSE = 0x00001000
    OPEN_BY_FILE_ID = 0x00002000
    OPEN_FOR_BACKUP_INTENT = 0x00004000
    NO_COMPRESSION = 0x00008000
    OPEN_REQUIRING_OPLOCK = 0x00010000
    DISALLOW_EXCLUSIVE = 0x00020000
    RESERVE_OPFILTER = 0x00100000
    OPEN_REPARSE_POINT = 0x00200000
    OPEN_NO_RECALL = 0x00400000
    OPEN_FOR_FREE_SPACE_QUERY = 0x00800000


class ShareAccess(IntFlag):
    READ = 0x1
    WRITE = 0x2
    DELETE = 0x4


class AccessMask(IntFlag):
    """[MS-SMB2] 2.2.13.1.1 File_Pipe_Printer_Access_Mask and 2.2.13.1.2 Directory_Access_Mask
    (the directory names alias the same bits)."""

    FILE_READ_DATA = 0x00000001
    FILE_WRITE_DATA = 0x00000002
    FILE_APPEND_DATA = 0x00000004
    FILE_READ_EA = 0x00000008
    FILE_WRITE_EA = 0x00000010
    FILE_EXECUTE = 0x00000020
    FILE_DELETE_CHILD = 0x00000040
    FILE_READ_ATTRIBUTES = 0x00000080
    FILE_WRITE_ATTRIBUTES = 0x00000100
    DELETE = 0x00010000
    READ_CONTROL = 0x00020000
    WRITE_DAC = 0x00040000
    WRITE_OWNER = 0x00080000
    SYNCHRONIZE = 0x00100000
    ACCESS_SYSTEM_SECURITY = 0x01000000
    MAXIMUM_ALLOWED = 0x02000000
    GENERIC_ALL = 0x10000000
    GENERIC_EXECUTE = 0x20000000
    GENERIC_WRITE = 0x40000000
    GENERIC_READ = 0x80000000
    FILE_LIST_DIRECTORY = 0x00000001
    FILE_ADD_FILE = 0x00000002
    FILE_ADD_SUBDIRECTORY = 0x00000004
    FILE_TRAVERSE = 0x00000020


FILE_ALL_ACCESS: Final = 0x001F01FF
# Bits a client may set in DesiredAccess (3.3.5.9: anything else is ACCESS_DENIED).
VALID_ACCESS_MASK: Final = 0xF21F01FF
# The generic mapping for files ([MS-FSA] / Windows FILE_GENERIC_*).
FILE_GENERIC_READ: Final = 0x00120089
FILE_GENERIC_WRITE: Final = 0x00120116
FILE_GENERIC_EXECUTE: Final = 0x001200A0


def map_generic_access(mask: int) -> int:
    """Replace the GENERIC_* bits of ``mask`` by the file rights they stand for."""
    out = mask & ~0xF0000000
    if mask & AccessMask.GENERIC_READ:
        out |= FILE_GENERIC_READ
    if mask & AccessMask.GENERIC_WRITE:
        out |= FILE_GENERIC_WRITE
    if mask & AccessMask.GENERIC_EXECUTE:
        out |= FILE_GENERIC_EXECUTE
    if mask & AccessMask.GENERIC_ALL:
        out |= FILE_ALL_ACCESS
    return out


class CreateAction(IntEnum):
    SUPERSEDED = 0
    OPENED = 1
    CREATED = 2
    OVERWRITTEN = 3


class CreateResponseFlags(IntFlag):
    REPARSEPOINT = 0x01


class LeaseState(IntFlag):
    NONE = 0x0
    READ = 0x1
    HANDLE = 0x2
    WRITE = 0x4


class LeaseFlags(IntFlag):
    """[MS-SMB2] 2.2.13.2.8 / 2.2.13.2.10 / 2.2.14.2.10-11 lease Flags."""

    BREAK_IN_PROGRESS = 0x2
    PARENT_LEASE_KEY_SET = 0x4


class DurableV2Flags(IntFlag):
    PERSISTENT = 0x2


# [MS-SMB2] 2.2.13.2 create context names.
CTX_EA_BUFFER: Final = b"ExtA"
CTX_SD_BUFFER: Final = b"SecD"
CTX_DURABLE_HANDLE_REQUEST: Final = b"DHnQ"
CTX_DURABLE_HANDLE_RECONNECT: Final = b"DHnC"
CTX_ALLOCATION_SIZE: Final = b"AlSi"
CTX_QUERY_MAXIMAL_ACCESS: Final = b"MxAc"
CTX_TIMEWARP_TOKEN: Final = b"TWrp"
CTX_QUERY_ON_DISK_ID: Final = b"QFid"
CTX_REQUEST_LEASE: Final = b"RqLs"
CTX_DURABLE_HANDLE_REQUEST_V2: Final = b"DH2Q"
CTX_DURABLE_HANDLE_RECONNECT_V2: Final = b"DH2C"
CTX_APP_INSTANCE_ID: Final = bytes.fromhex("45BCA66AEFA7F74A9008FA462E144D74")
CTX_APP_INSTANCE_VERSION: Final = bytes.fromhex("B982D0B73B56074FA07B524A8116A010")
CTX_SVHDX_OPEN_DEVICE: Final = bytes.fromhex("9CCBCF9E04C1E643980E158DA1F6EC83")
CTX_POSIX: Final = bytes.fromhex("93AD25509CB411E7B42383DE968BCD7C")


class CreateContext(NamedTuple):
    """[MS-SMB2] 2.2.13.2 SMB2_CREATE_CONTEXT: the tag and a view of its Data."""

    name: bytes
    data: memoryview


class CreateRequest(NamedTuple):
    """[MS-SMB2] 2.2.13 SMB2 CREATE Request."""

    security_flags: int
    requested_oplock_level: int
    impersonation_level: int
    smb_create_flags: int
    desired_access: int
    file_attributes: int
    share_access: int
    create_disposition: int
    create_options: int
    name: str
    contexts: tuple[CreateContext, ...]

    def context(self, name: bytes) -> CreateContext | None:
        """The first context tagged ``name``, or None."""
        for c in self.contexts:
            if c.name == name:
                return c
        return None


# StructureSize SecurityFlags RequestedOplockLevel ImpersonationLevel SmbCreateFlags
# Reserved DesiredAccess FileAttributes ShareAccess CreateDisposition CreateOptions
# NameOffset NameLength CreateContextsOffset CreateContextsLength
_CREATE_REQ: Final = struct.Struct("<HBBIQQIIIIIHHII")
CREATE_REQUEST_SIZE: Final = 57
_REQ_FIXED_END: Final = HEADER_SIZE + _CREATE_REQ.size  # 120, header-relative

# Next NameOffset NameLength Reserved DataOffset DataLength
_CTX: Final = struct.Struct("<IHHHHI")


def parse_create_request(body: Buffer) -> CreateRequest:
    """Parse a CREATE request body (``Request.body``).

    NameOffset/NameLength and CreateContextsOffset/Length must lie inside the message and
    after the fixed part (a zero length with any offset means "absent"); the contexts start
    8-byte aligned. Raises ParseError(INVALID_PARAMETER), or OBJECT_NAME_INVALID for a name
    that is not UTF-16.
    """
    mv = body_view(body, CREATE_REQUEST_SIZE, "CREATE")
    (
        _,
        security_flags,
        oplock,
        impersonation,
        create_flags,
        _reserved,
        access,
        attributes,
        share,
        disposition,
        options,
        name_off,
        name_len,
        ctx_off,
        ctx_len,
    ) = _CREATE_REQ.unpack_from(mv, 0)
    name = decode_utf16(
        region(mv, name_off, name_len, "CREATE name", minimum=_CREATE_REQ.size), "CREATE name"
    )
    contexts: tuple[CreateContext, ...] = ()
    if ctx_len:
        if ctx_off & 7:
            raise ParseError(f"CREATE contexts at unaligned offset {ctx_off}")
        raw = region(mv, ctx_off, ctx_len, "CREATE contexts", minimum=_CREATE_REQ.size)
        contexts = parse_create_contexts(raw)
    return CreateRequest(
        security_flags,
        oplock,
        impersonation,
        create_flags,
        access,
        attributes,
        share,
        disposition,
        options,
        name,
        contexts,
    )


def pack_create_request(r: CreateRequest) -> bytes:
    """Build a CREATE request body (from StructureSize on; offsets assume a 64-byte header
    right before it). The inverse of :func:`parse_create_request`, used by tests and peers."""
    name = encode_utf16(r.name)
    name_off = _REQ_FIXED_END if name else 0
    buf = bytearray(name)
    ctx_off = 0
    ctx = pack_create_contexts([(c.name, c.data) for c in r.contexts])
    if ctx:
        buf += bytes(pad8(len(buf)) - len(buf))
        ctx_off = _REQ_FIXED_END + len(buf)
        buf += ctx
    if not buf:
        buf = bytearray(1)
    fixed = _CREATE_REQ.pack(
        CREATE_REQUEST_SIZE,
        r.security_flags,
        r.requested_oplock_level,
        r.impersonation_level,
        r.smb_create_flags,
        0,
        r.desired_access,
        r.file_attributes,
        r.share_access,
        r.create_disposition,
        r.create_options,
        name_off,
        len(name),
        ctx_off,
        len(ctx),
    )
    return fixed + bytes(buf)


def parse_create_contexts(buf: memoryview | bytes) -> tuple[CreateContext, ...]:
    """[MS-SMB2] 2.2.13.2: walk a chain of SMB2_CREATE_CONTEXT structures.

    Each Next is 8-byte aligned and stays in the buffer; NameOffset/NameLength and
    DataOffset/DataLength (both relative to the context) stay inside the context, the data
    8-byte aligned and after the name. Raises ParseError(INVALID_PARAMETER).
    """
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    out: list[CreateContext] = []
    pos = 0
    while True:
        remaining = len(mv) - pos
        if remaining < _CTX.size:
            raise ParseError("create context header truncated")
        nxt, name_off, name_len, _reserved, data_off, data_len = _CTX.unpack_from(mv, pos)
        if nxt:
            if nxt & 7 or nxt < _CTX.size or nxt >= remaining:
                raise ParseError(f"create context Next {nxt} invalid")
            extent = nxt
        else:
            extent = remaining
        if name_len < 4 or name_off < _CTX.size or name_off + name_len > extent:
            raise ParseError("create context name outside the context")
        if data_len:
            if data_off & 7 or data_off < name_off + name_len or data_off + data_len > extent:
                raise ParseError("create context data outside the context")
            data = mv[pos + data_off : pos + data_off + data_len]
        else:
            data = mv[0:0]
        out.append(CreateContext(bytes(mv[pos + name_off : pos + name_off + name_len]), data))
        if not nxt:
            return tuple(out)
        pos += nxt


def pack_create_contexts(items: Iterable[tuple[bytes, Buffer]]) -> bytes:
    """Chain ``(name, data)`` pairs as [MS-SMB2] 2.2.13.2 / 2.2.14.2 lay them out: name at
    16, data 8-byte aligned after it, each following context 8-byte aligned."""
    parts: list[bytes] = []
    entries = list(items)
    for i, (name, data) in enumerate(entries):
        data_off = pad8(_CTX.size + len(name)) if len(data) else 0
        end = (data_off + len(data)) if len(data) else _CTX.size + len(name)
        last = i == len(entries) - 1
        nxt = 0 if last else pad8(end)
        entry = bytearray(_CTX.pack(nxt, _CTX.size, len(name), 0, data_off, len(data)))
        entry += name
        if len(data):
            entry += bytes(data_off - len(entry))
            entry += data
        if not last:
            entry += bytes(nxt - len(entry))
        parts.append(bytes(entry))
    return b"".join(parts)


class CreateResponse(NamedTuple):
    """[MS-SMB2] 2.2.14 SMB2 CREATE Response. Times are FILETIMEs."""

    oplock_level: int
    flags: int
    create_action: int
    creation_time: int
    last_access_time: int
    last_write_time: int
    change_time: int
    allocation_size: int
    end_of_file: int
    file_attributes: int
    file_id: tuple[int, int]
    contexts: tuple[tuple[bytes, bytes], ...] = ()


# StructureSize OplockLevel Flags CreateAction CreationTime LastAccessTime LastWriteTime
# ChangeTime AllocationSize EndofFile FileAttributes Reserved2 FileId.Persistent
# FileId.Volatile CreateContextsOffset CreateContextsLength
_CREATE_RESP: Final = struct.Struct("<HBBIQQQQQQIIQQII")
CREATE_RESPONSE_SIZE: Final = 89
_RESP_FIXED_END: Final = HEADER_SIZE + _CREATE_RESP.size  # 152


def pack_create_response(r: CreateResponse) -> list[bytes]:
    """Build the CREATE response body as iovec parts (fixed part, contexts)."""
    ctx = pack_create_contexts(r.contexts)
    fixed = _CREATE_RESP.pack(
        CREATE_RESPONSE_SIZE,
        r.oplock_level,
        r.flags,
        r.create_action,
        r.creation_time,
        r.last_access_time,
        r.last_write_time,
        r.change_time,
        r.allocation_size,
        r.end_of_file,
        r.file_attributes,
        0,
        r.file_id[0],
        r.file_id[1],
        _RESP_FIXED_END if ctx else 0,
        len(ctx),
    )
    return [fixed, ctx] if ctx else [fixed]


def parse_create_response(body: Buffer) -> CreateResponse:
    """Parse a CREATE response body (tests and client-side peers)."""
    mv = body_view(body, CREATE_RESPONSE_SIZE, "CREATE response")
    v = _CREATE_RESP.unpack_from(mv, 0)
    ctx_off, ctx_len = v[14], v[15]
    contexts: tuple[tuple[bytes, bytes], ...] = ()
    if ctx_len:
        if ctx_off & 7:
            raise ParseError("CREATE response contexts unaligned")
        raw = region(mv, ctx_off, ctx_len, "CREATE response contexts", minimum=_CREATE_RESP.size)
        contexts = tuple((c.name, bytes(c.data)) for c in parse_create_contexts(raw))
    return CreateResponse(
        v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], (v[12], v[13]), contexts
    )


# --- context payloads -------------------------------------------------------------------

_U32: Final = struct.Struct("<I")
_U64: Final = struct.Struct("<Q")
_MXAC_RESP: Final = struct.Struct("<II")
_FILE_ID: Final = struct.Struct("<QQ")


def _exact(data: Buffer, size: int, what: str) -> None:
    if len(data) != size:
        raise ParseError(f"{what}: {len(data)} bytes, expected {size}")


def parse_mxac_request(data: Buffer) -> int | None:
    """[MS-SMB2] 2.2.13.2.5: empty, or an 8-byte Timestamp. Returns the timestamp."""
    if len(data) == 0:
        return None
    _exact(data, 8, "MxAc")
    return int(_U64.unpack_from(data)[0])


def pack_mxac_request(timestamp: int | None = None) -> bytes:
    return b"" if timestamp is None else _U64.pack(timestamp)


class MaximalAccessResponse(NamedTuple):
    """[MS-SMB2] 2.2.14.2.5 SMB2_CREATE_QUERY_MAXIMAL_ACCESS_RESPONSE."""

    query_status: int
    maximal_access: int


def pack_mxac_response(query_status: int, maximal_access: int) -> bytes:
    return _MXAC_RESP.pack(query_status, maximal_access)


def parse_mxac_response(data: Buffer) -> MaximalAccessResponse:
    _exact(data, 8, "MxAc response")
    return MaximalAccessResponse(*_MXAC_RESP.unpack_from(data))


_QFID: Final = struct.Struct("<QQ16s")


class OnDiskId(NamedTuple):
    """[MS-SMB2] 2.2.14.2.9 SMB2_CREATE_QUERY_ON_DISK_ID: DiskFileId, VolumeId, Reserved."""

    disk_file_id: int
    volume_id: int


def pack_qfid_response(disk_file_id: int, volume_id: int) -> bytes:
    return _QFID.pack(disk_file_id, volume_id, bytes(16))


def parse_qfid_response(data: Buffer) -> OnDiskId:
    _exact(data, 32, "QFid response")
    a, b, _ = _QFID.unpack_from(data)
    return OnDiskId(a, b)


# LeaseKey LeaseState LeaseFlags LeaseDuration [ParentLeaseKey Epoch Reserved]
_LEASE_V1: Final = struct.Struct("<16sIIQ")
_LEASE_V2: Final = struct.Struct("<16sIIQ16sHH")


class Lease(NamedTuple):
    """[MS-SMB2] 2.2.13.2.8 / 2.2.13.2.10 SMB2_CREATE_REQUEST_LEASE(_V2) and the responses
    2.2.14.2.10 / 2.2.14.2.11 (same layouts). ``version`` is 1 (32 bytes) or 2 (52 bytes)."""

    key: bytes
    state: int
    flags: int = 0
    duration: int = 0
    parent_key: bytes = bytes(16)
    epoch: int = 0
    version: int = 2


def parse_lease(data: Buffer) -> Lease:
    """A lease context of either version; any other length is INVALID_PARAMETER."""
    if len(data) == _LEASE_V1.size:
        key, state, flags, duration = _LEASE_V1.unpack_from(data)
        return Lease(key, state, flags, duration, bytes(16), 0, 1)
    if len(data) == _LEASE_V2.size:
        key, state, flags, duration, parent, epoch, _ = _LEASE_V2.unpack_from(data)
        return Lease(key, state, flags, duration, parent, epoch, 2)
    raise ParseError(f"lease context of {len(data)} bytes")


def pack_lease(lease: Lease) -> bytes:
    if lease.version == 1:
        return _LEASE_V1.pack(lease.key, lease.state, lease.flags, lease.duration)
    return _LEASE_V2.pack(
        lease.key, lease.state, lease.flags, lease.duration, lease.parent_key, lease.epoch, 0
    )


def parse_durable_request(data: Buffer) -> None:
    """[MS-SMB2] 2.2.13.2.3 SMB2_CREATE_DURABLE_HANDLE_REQUEST: 16 reserved bytes."""
    _exact(data, 16, "DHnQ")


DURABLE_RESPONSE: Final = bytes(8)
"""[MS-SMB2] 2.2.14.2.3 SMB2_CREATE_DURABLE_HANDLE_RESPONSE: 8 reserved bytes."""


def parse_durable_reconnect(data: Buffer) -> tuple[int, int]:
    """[MS-SMB2] 2.2.13.2.4 SMB2_CREATE_DURABLE_HANDLE_RECONNECT: the FileId to reclaim."""
    _exact(data, 16, "DHnC")
    p, v = _FILE_ID.unpack_from(data)
    return (p, v)


def pack_durable_reconnect(file_id: tuple[int, int]) -> bytes:
    return _FILE_ID.pack(*file_id)


_DH2Q: Final = struct.Struct("<IIQ16s")
_DH2Q_RESP: Final = struct.Struct("<II")
_DH2C: Final = struct.Struct("<QQ16sI")


class DurableV2Request(NamedTuple):
    """[MS-SMB2] 2.2.13.2.11 SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2 (Timeout in ms)."""

    timeout: int
    flags: int
    create_guid: bytes


def parse_durable_v2_request(data: Buffer) -> DurableV2Request:
    _exact(data, _DH2Q.size, "DH2Q")
    timeout, flags, _, guid = _DH2Q.unpack_from(data)
    return DurableV2Request(timeout, flags, guid)


def pack_durable_v2_request(r: DurableV2Request) -> bytes:
    return _DH2Q.pack(r.timeout, r.flags, 0, r.create_guid)


def pack_durable_v2_response(timeout: int, flags: int) -> bytes:
    """[MS-SMB2] 2.2.14.2.12 SMB2_CREATE_DURABLE_HANDLE_RESPONSE_V2."""
    return _DH2Q_RESP.pack(timeout, flags)


def parse_durable_v2_response(data: Buffer) -> tuple[int, int]:
    _exact(data, 8, "DH2Q response")
    t, f = _DH2Q_RESP.unpack_from(data)
    return (t, f)


class DurableV2Reconnect(NamedTuple):
    """[MS-SMB2] 2.2.13.2.12 SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2."""

    file_id: tuple[int, int]
    create_guid: bytes
    flags: int


def parse_durable_v2_reconnect(data: Buffer) -> DurableV2Reconnect:
    _exact(data, _DH2C.size, "DH2C")
    p, v, guid, flags = _DH2C.unpack_from(data)
    return DurableV2Reconnect((p, v), guid, flags)


def pack_durable_v2_reconnect(r: DurableV2Reconnect) -> bytes:
    return _DH2C.pack(r.file_id[0], r.file_id[1], r.create_guid, r.flags)


def parse_allocation_size(data: Buffer) -> int:
    """[MS-SMB2] 2.2.13.2.6 SMB2_CREATE_ALLOCATION_SIZE."""
    _exact(data, 8, "AlSi")
    return int(_U64.unpack_from(data)[0])


def parse_timewarp_token(data: Buffer) -> int:
    """[MS-SMB2] 2.2.13.2.7 SMB2_CREATE_TIMEWARP_TOKEN: a FILETIME."""
    _exact(data, 8, "TWrp")
    return int(_U64.unpack_from(data)[0])


_APP_INSTANCE: Final = struct.Struct("<HH16s")


def parse_app_instance_id(data: Buffer) -> bytes:
    """[MS-SMB2] 2.2.13.2.13 SMB2_CREATE_APP_INSTANCE_ID: StructureSize 20, the GUID."""
    _exact(data, _APP_INSTANCE.size, "AppInstanceId")
    size, _, guid = _APP_INSTANCE.unpack_from(data)
    if size != 20:
        raise ParseError("AppInstanceId StructureSize")
    return bytes(guid)


def context_names(contexts: Sequence[CreateContext]) -> list[bytes]:
    return [c.name for c in contexts]


def check_no_duplicates(contexts: Sequence[CreateContext]) -> None:
    """Windows fails a CREATE that carries the same context twice with INVALID_PARAMETER."""
    seen: set[bytes] = set()
    for c in contexts:
        if c.name in seen:
            raise ParseError(f"duplicate create context {c.name!r}", NTStatus.INVALID_PARAMETER)
        seen.add(c.name)
