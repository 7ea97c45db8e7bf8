"""File attributes, FILETIME and the persisted DOS attribute record. Pure.

[MS-FSCC] 2.6 file attributes; 2.1.1 FILETIME (100 ns units since 1601-01-01 UTC).
What POSIX cannot hold (the DOS attribute bits and the creation time) is kept in the
``user.vmstor.dosattrib`` extended attribute as a small versioned record.
"""

from __future__ import annotations

import struct
from enum import IntFlag

__all__ = [
    "DOSATTRIB_XATTR",
    "FILETIME_UNIX_EPOCH",
    "SETTABLE_ATTRIBUTES",
    "FileAttributes",
    "decode_dosattrib",
    "encode_dosattrib",
    "filetime_to_ns",
    "ns_to_filetime",
]

DOSATTRIB_XATTR = "user.vmstor.dosattrib"
FILETIME_UNIX_EPOCH = 116_444_736_000_000_000  # 1970-01-01 as FILETIME


class FileAttributes(IntFlag):
    """[MS-FSCC] 2.6 File Attributes."""

    READONLY = 0x00000001
    HIDDEN = 0x00000002
    SYSTEM = 0x00000004
    DIRECTORY = 0x00000010
    ARCHIVE = 0x00000020
    NORMAL = 0x00000080
    TEMPORARY = 0x00000100
    SPARSE_FILE = 0x00000200
    REPARSE_POINT = 0x00000400
    COMPRESSED = 0x00000800
    OFFLINE = 0x00001000
    NOT_CONTENT_INDEXED = 0x00002000
    ENCRYPTED = 0x00004000
    INTEGRITY_STREAM = 0x00008000


# What a client may set with FileBasicInformation ([MS-FSA] 2.1.5.14.2); SPARSE_FILE is
# set with FSCTL_SET_SPARSE and DIRECTORY never changes.
SETTABLE_ATTRIBUTES = (
    FileAttributes.READONLY
    | FileAttributes.HIDDEN
    | FileAttributes.SYSTEM
    | FileAttributes.ARCHIVE
    | FileAttributes.TEMPORARY
    | FileAttributes.OFFLINE
    | FileAttributes.NOT_CONTENT_INDEXED
)

# What the xattr stores (READONLY comes from the mode bits, DIRECTORY from the file type).
STORED_ATTRIBUTES = (SETTABLE_ATTRIBUTES & ~FileAttributes.READONLY) | FileAttributes.SPARSE_FILE


def ns_to_filetime(ns: int) -> int:
    """Nanoseconds since the Unix epoch -> FILETIME (clamped at 0)."""
    return max(0, ns // 100 + FILETIME_UNIX_EPOCH)


def filetime_to_ns(ft: int) -> int:
    return (ft - FILETIME_UNIX_EPOCH) * 100


# version (1), attributes, creation FILETIME (0 = not recorded)
_DOSATTRIB_V1 = struct.Struct("<BIQ")


def encode_dosattrib(attributes: int, creation_time: int) -> bytes:
    return _DOSATTRIB_V1.pack(1, attributes & STORED_ATTRIBUTES, creation_time)


def decode_dosattrib(blob: bytes) -> tuple[int, int] | None:
    """(attributes, creation FILETIME) or None when the record is not one of ours."""
    if len(blob) != _DOSATTRIB_V1.size or blob[0] != 1:
        return None
    _, attributes, creation = _DOSATTRIB_V1.unpack(blob)
    return attributes & STORED_ATTRIBUTES, creation
