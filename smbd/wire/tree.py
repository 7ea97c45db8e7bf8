"""[MS-SMB2] 2.2.9 TREE_CONNECT Request and 2.2.10 TREE_CONNECT Response."""

from __future__ import annotations

import struct
from typing import NamedTuple

from smbd.wire.errors import ParseError
from smbd.wire.header import HEADER_SIZE
from smbd.wire.status import NTStatus

TREE_CONNECT_FLAG_CLUSTER_RECONNECT = 0x0001
TREE_CONNECT_FLAG_REDIRECT_TO_OWNER = 0x0002
TREE_CONNECT_FLAG_EXTENSION_PRESENT = 0x0004

MAX_PATH_BYTES = 2 * 1024  # \\server\share; Windows limits share names to 80 characters

# StructureSize, Flags, PathOffset, PathLength
_REQ = struct.Struct("<HHHH")
# StructureSize, ShareType, Reserved, ShareFlags, Capabilities, MaximalAccess
_RESP = struct.Struct("<HBBIII")
# TREE_CONNECT_REQUEST_EXTENSION: TreeConnectContextOffset, TreeConnectContextCount,
# Reserved(10), then PathName
_EXT = struct.Struct("<IH10x")


class TreeConnectRequest(NamedTuple):
    flags: int
    path: str


def parse_tree_connect_request(body: memoryview | bytes, dialect: int = 0) -> TreeConnectRequest:
    if len(body) < _REQ.size:
        raise ParseError("short TREE_CONNECT request")
    size, flags, off, length = _REQ.unpack_from(body, 0)
    if size != 9:
        raise ParseError(f"TREE_CONNECT StructureSize {size}")
    if dialect != 0x0311:
        flags = 0  # Reserved before 3.1.1
    if flags & TREE_CONNECT_FLAG_EXTENSION_PRESENT:
        # [MS-SMB2] 2.2.9.1: PathOffset is relative to the extension, which starts at
        # the Buffer; the extension's own fields precede the path.
        ext = _REQ.size
        if ext + _EXT.size > len(body):
            raise ParseError("TREE_CONNECT extension beyond the message")
        start = ext + off
    else:
        start = off - HEADER_SIZE
        if length and start < _REQ.size:
            raise ParseError(f"TREE_CONNECT PathOffset {off}")
    if length > MAX_PATH_BYTES or length % 2:
        raise ParseError(f"TREE_CONNECT PathLength {length}", NTStatus.BAD_NETWORK_NAME)
    if start < 0 or start + length > len(body):
        raise ParseError("TREE_CONNECT path beyond the message")
    try:
        path = bytes(body[start : start + length]).decode("utf-16-le")
    except UnicodeDecodeError:
        raise ParseError("TREE_CONNECT path is not UTF-16", NTStatus.BAD_NETWORK_NAME) from None
    return TreeConnectRequest(flags, path)


def pack_tree_connect_request(path: str, flags: int = 0) -> bytes:
    raw = path.encode("utf-16-le")
    return _REQ.pack(9, flags, HEADER_SIZE + _REQ.size, len(raw)) + raw


def share_name_from_path(path: str) -> tuple[str, str]:
    """Split ``\\\\server\\share`` into (server, share). Raises ParseError
    (BAD_NETWORK_NAME) for anything else ([MS-SMB2] 3.3.5.7)."""
    p = path.rstrip("\0")
    if not p.startswith("\\\\"):
        raise ParseError(f"tree path {p!r} is not \\\\server\\share", NTStatus.BAD_NETWORK_NAME)
    parts = p[2:].split("\\")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ParseError(f"tree path {p!r} is not \\\\server\\share", NTStatus.BAD_NETWORK_NAME)
    return parts[0], parts[1]


class TreeConnectResponse(NamedTuple):
    share_type: int
    share_flags: int
    capabilities: int
    maximal_access: int


def pack_tree_connect_response(r: TreeConnectResponse) -> bytes:
    return _RESP.pack(16, r.share_type, 0, r.share_flags, r.capabilities, r.maximal_access)


def parse_tree_connect_response(body: memoryview | bytes) -> TreeConnectResponse:
    if len(body) < _RESP.size:
        raise ParseError("short TREE_CONNECT response")
    size, stype, _r, flags, caps, access = _RESP.unpack_from(body, 0)
    if size != 16:
        raise ParseError(f"TREE_CONNECT response StructureSize {size}")
    return TreeConnectResponse(stype, flags, caps, access)
