"""[MS-SMB2] 2.2.35 SMB2 CHANGE_NOTIFY Request, 2.2.36 CHANGE_NOTIFY Response and the
[MS-FSCC] 2.7.1 FILE_NOTIFY_INFORMATION chain it returns."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import IntEnum, IntFlag
from typing import Final, NamedTuple

from smbd.wire._util import Buffer, body_view, decode_utf16, encode_utf16, pad4, region
from smbd.wire.errors import ParseError
from smbd.wire.header import HEADER_SIZE

SMB2_WATCH_TREE: Final = 0x0001


class CompletionFilter(IntFlag):
    FILE_NAME = 0x00000001
    DIR_NAME = 0x00000002
    ATTRIBUTES = 0x00000004
    SIZE = 0x00000008
    LAST_WRITE = 0x00000010
    LAST_ACCESS = 0x00000020
    CREATION = 0x00000040
    EA = 0x00000080
    SECURITY = 0x00000100
    STREAM_NAME = 0x00000200
    STREAM_SIZE = 0x00000400
    STREAM_WRITE = 0x00000800


COMPLETION_FILTER_VALID: Final = 0x00000FFF


class NotifyAction(IntEnum):
    ADDED = 0x00000001
    REMOVED = 0x00000002
    MODIFIED = 0x00000003
    RENAMED_OLD_NAME = 0x00000004
    RENAMED_NEW_NAME = 0x00000005
    ADDED_STREAM = 0x00000006
    REMOVED_STREAM = 0x00000007
    MODIFIED_STREAM = 0x00000008


# StructureSize Flags OutputBufferLength FileId.Persistent FileId.Volatile CompletionFilter
# Reserved
_REQ: Final = struct.Struct("<HHIQQII")
# StructureSize OutputBufferOffset OutputBufferLength
_RESP: Final = struct.Struct("<HHI")
NOTIFY_OUTPUT_OFFSET: Final = HEADER_SIZE + _RESP.size  # 72


class ChangeNotifyRequest(NamedTuple):
    """[MS-SMB2] 2.2.35."""

    flags: int
    output_buffer_length: int
    file_id: tuple[int, int]
    completion_filter: int

    @property
    def watch_tree(self) -> bool:
        return bool(self.flags & SMB2_WATCH_TREE)


def parse_change_notify_request(body: Buffer) -> ChangeNotifyRequest:
    mv = body_view(body, 32, "CHANGE_NOTIFY")
    _, flags, out_len, p, v, filt, _ = _REQ.unpack_from(mv)
    return ChangeNotifyRequest(flags, out_len, (p, v), filt)


def pack_change_notify_request(r: ChangeNotifyRequest) -> bytes:
    return _REQ.pack(32, r.flags, r.output_buffer_length, *r.file_id, r.completion_filter, 0)


class NotifyEntry(NamedTuple):
    """One FILE_NOTIFY_INFORMATION: the action and the name relative to the watched
    directory (backslash-separated)."""

    action: int
    name: str


_ENTRY: Final = struct.Struct("<III")


def encode_notify_entries(entries: Iterable[NotifyEntry]) -> bytes:
    """[MS-FSCC] 2.7.1 chain: NextEntryOffset Action FileNameLength FileName, each entry
    4-byte aligned, the last with NextEntryOffset 0; the buffer is padded to a multiple of
    4 (as Samba sends). The caller compares the length with OutputBufferLength (too long:
    STATUS_NOTIFY_ENUM_DIR)."""
    out = bytearray()
    last = -1
    for e in entries:
        raw = encode_utf16(e.name)
        start = pad4(len(out))
        out += bytes(start - len(out))
        if last >= 0:
            struct.pack_into("<I", out, last, start - last)
        out += _ENTRY.pack(0, e.action, len(raw)) + raw
        last = start
    out += bytes(pad4(len(out)) - len(out))
    return bytes(out)


def parse_notify_entries(buf: Buffer) -> list[NotifyEntry]:
    """Walk a FILE_NOTIFY_INFORMATION chain (tests and client peers)."""
    mv = memoryview(buf)
    out: list[NotifyEntry] = []
    pos = 0
    while len(mv):
        if pos + _ENTRY.size > len(mv):
            raise ParseError("FILE_NOTIFY_INFORMATION truncated")
        nxt, action, n = _ENTRY.unpack_from(mv, pos)
        end = pos + _ENTRY.size + n
        if end > len(mv) or (nxt and (nxt & 3 or pos + nxt < end)):
            raise ParseError("FILE_NOTIFY_INFORMATION outside the buffer")
        out.append(NotifyEntry(action, decode_utf16(mv[pos + _ENTRY.size : end], "notify")))
        if not nxt:
            break
        pos += nxt
    return out


def pack_change_notify_response(entries: Buffer) -> list[Buffer]:
    """[MS-SMB2] 2.2.36 as iovec parts. With no entries (NOTIFY_ENUM_DIR, NOTIFY_CLEANUP)
    the offset and length are 0."""
    fixed = _RESP.pack(9, NOTIFY_OUTPUT_OFFSET if len(entries) else 0, len(entries))
    return [fixed, entries] if len(entries) else [fixed, b"\0"]


def parse_change_notify_response(body: Buffer) -> memoryview:
    mv = body_view(body, 9, "CHANGE_NOTIFY response")
    _, off, length = _RESP.unpack_from(mv)
    return region(mv, off, length, "CHANGE_NOTIFY output", minimum=_RESP.size)
