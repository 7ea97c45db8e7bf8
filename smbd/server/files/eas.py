"""Extended attributes ([MS-FSCC] 2.4.15 FILE_FULL_EA_INFORMATION): the ExtA create context
and SET_INFO / QUERY_INFO FileFullEaInformation, kept by the backend as user xattrs."""

from __future__ import annotations

from smbd.backend import FileHandle, PosixShare
from smbd.server.request import SMBError
from smbd.wire import fscc
from smbd.wire.status import NTStatus

__all__ = ["apply_eas_sync", "ea_list_sync", "validate"]

_INVALID = frozenset(b'"*+,/:;<=>?[\\]|') | frozenset(range(0x20)) | frozenset(range(0x80, 0x100))


def validate(entries: list[fscc.EaEntry]) -> None:
    """Names are 1..255 bytes of ASCII without the characters NTFS refuses
    ([MS-FSCC] 2.4.15: STATUS_INVALID_EA_NAME)."""
    for e in entries:
        if not e.name or len(e.name) > 255 or any(b in _INVALID for b in e.name):
            raise SMBError(NTStatus.INVALID_EA_NAME, f"EA name {e.name!r}")
        if len(e.value) > 0xFFFF:
            raise SMBError(NTStatus.EA_TOO_LARGE, "EA value longer than 65535 bytes")


def apply_eas_sync(backend: PosixShare, handle: FileHandle, entries: list[fscc.EaEntry]) -> None:
    for e in entries:
        backend.set_ea_sync(handle, e.name, e.value)


def ea_list_sync(backend: PosixShare, handle: FileHandle) -> bytes:
    """The packed FILE_FULL_EA_INFORMATION chain of every EA the file has."""
    return fscc.pack_full_ea_info(
        [fscc.EaEntry(name, value) for name, value in backend.list_eas_sync(handle)]
    )
