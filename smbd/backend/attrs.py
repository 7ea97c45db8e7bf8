"""File attributes, FILETIME and the persisted DOS attribute record. Pure.

[MS-FSCC] 2.6 file attributes; 2.1.1 FILETIME (100 ns units since 1601-01-01 UTC).
What POSIX cannot hold (the DOS attribute bits and the creation time) is kept in the
``user.vmstor.dosattrib`` extended attribute as a small versioned record.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from smbd.wire.fscc import FILETIME_UNIX_EPOCH, FileAttributes
from smbd.wire.fscc import filetime_to_unix_ns as filetime_to_ns
from smbd.wire.fscc import unix_ns_to_filetime as ns_to_filetime

__all__ = [
    "DOSATTRIB_XATTR",
    "FILETIME_UNIX_EPOCH",
    "SETTABLE_ATTRIBUTES",
    "DosAttrib",
    "FileAttributes",
    "decode_dosattrib",
    "encode_dosattrib",
    "filetime_to_ns",
    "ns_to_filetime",
]

DOSATTRIB_XATTR = "user.vmstor.dosattrib"


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


# What a CREATE's FileAttributes can give a new file (SPARSE_FILE comes only from
# FSCTL_SET_SPARSE; READONLY becomes the mode bits).
CREATE_ATTRIBUTES = (
    FileAttributes.HIDDEN
    | FileAttributes.SYSTEM
    | FileAttributes.ARCHIVE
    | FileAttributes.TEMPORARY
    | FileAttributes.OFFLINE
    | FileAttributes.NOT_CONTENT_INDEXED
)


class DosAttrib(NamedTuple):
    """What the xattr keeps. ``change_time`` is a ChangeTime a client set; it stands while
    the file's mtime is still ``change_mtime_ns`` (POSIX cannot set ctime, and the first
    write after the SET_INFO makes the real ctime the better answer again)."""

    attributes: int
    creation_time: int  # FILETIME, 0 = not recorded
    change_time: int = 0
    change_mtime_ns: int = 0


_STORED = int(STORED_ATTRIBUTES)  # ``int & IntFlag`` builds a flag object per call

# version (1), attributes, creation FILETIME
_DOSATTRIB_V1 = struct.Struct("<BIQ")
# version (2), attributes, creation FILETIME, change FILETIME, mtime (ns) it belongs to
_DOSATTRIB_V2 = struct.Struct("<BIQQq")


def encode_dosattrib(d: DosAttrib) -> bytes:
    attrs = d.attributes & STORED_ATTRIBUTES
    if not d.change_time:
        return _DOSATTRIB_V1.pack(1, attrs, d.creation_time)
    return _DOSATTRIB_V2.pack(2, attrs, d.creation_time, d.change_time, d.change_mtime_ns)


def decode_dosattrib(blob: bytes) -> DosAttrib | None:
    """The record, or None when it is not one of ours (read on every stat: plain ints)."""
    if len(blob) == _DOSATTRIB_V1.size and blob[0] == 1:
        _, attributes, creation = _DOSATTRIB_V1.unpack(blob)
        return DosAttrib(attributes & _STORED, creation)
    if len(blob) == _DOSATTRIB_V2.size and blob[0] == 2:
        _, attributes, creation, change, mtime = _DOSATTRIB_V2.unpack(blob)
        return DosAttrib(attributes & _STORED, creation, change, mtime)
    return None
