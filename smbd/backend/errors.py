"""Backend errors and the one errno -> NTSTATUS table.

Every OS error a backend operation meets leaves the backend as :class:`BackendError`
carrying the NTSTATUS the client is answered with; nothing else escapes.
"""

from __future__ import annotations

import errno
from types import TracebackType

from smbd.wire.status import NTStatus

__all__ = ["ERRNO_STATUS", "BackendError", "os_errors", "status_for_errno"]

UNEXPECTED_IO_ERROR = 0xC00000E9


class BackendError(Exception):
    """A share operation failed; ``status`` is the NTSTATUS to answer with."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message or f"status 0x{status:08x}")
        self.status = status


# [MS-ERREF] 2.3.1 values for the errno values a POSIX filesystem returns. ELOOP is what
# O_NOFOLLOW answers for a symlink: symlinks are never followed, so they are refused.
ERRNO_STATUS: dict[int, int] = {
    errno.ENOENT: NTStatus.OBJECT_NAME_NOT_FOUND,
    errno.ENOTDIR: NTStatus.OBJECT_PATH_NOT_FOUND,
    errno.EEXIST: NTStatus.OBJECT_NAME_COLLISION,
    errno.EACCES: NTStatus.ACCESS_DENIED,
    errno.EPERM: NTStatus.ACCESS_DENIED,
    errno.ELOOP: NTStatus.ACCESS_DENIED,
    errno.ENOTEMPTY: NTStatus.DIRECTORY_NOT_EMPTY,
    errno.EISDIR: NTStatus.FILE_IS_A_DIRECTORY,
    errno.ENOSPC: NTStatus.DISK_FULL,
    errno.EFBIG: NTStatus.DISK_FULL,
    errno.EDQUOT: NTStatus.DISK_QUOTA_EXCEEDED,
    errno.EROFS: NTStatus.MEDIA_WRITE_PROTECTED,
    errno.ENAMETOOLONG: NTStatus.OBJECT_NAME_INVALID,
    errno.EILSEQ: NTStatus.OBJECT_NAME_INVALID,
    errno.EXDEV: NTStatus.NOT_SAME_DEVICE,
    errno.EBADF: NTStatus.INVALID_HANDLE,
    errno.EINVAL: NTStatus.INVALID_PARAMETER,
    errno.EIO: UNEXPECTED_IO_ERROR,
    errno.EMFILE: NTStatus.INSUFFICIENT_RESOURCES,
    errno.ENFILE: NTStatus.INSUFFICIENT_RESOURCES,
    errno.ENOMEM: NTStatus.NO_MEMORY,
    errno.EOPNOTSUPP: NTStatus.NOT_SUPPORTED,
    errno.ENOSYS: NTStatus.NOT_SUPPORTED,
    errno.EBUSY: NTStatus.SHARING_VIOLATION,
    errno.ETXTBSY: NTStatus.SHARING_VIOLATION,
    errno.ENODATA: NTStatus.NOT_FOUND,
    errno.ESTALE: NTStatus.FILE_INVALID,
}


def status_for_errno(err: int | None) -> int:
    """The NTSTATUS for an errno (UNSUCCESSFUL for one the table does not name)."""
    if err is None:
        return NTStatus.UNSUCCESSFUL
    return ERRNO_STATUS.get(err, NTStatus.UNSUCCESSFUL)


class _OSErrors:
    """What :func:`os_errors` returns: a plain context manager (a generator-based one
    costs several times more, and every data read and write goes through one)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, OSError):
            raise BackendError(status_for_errno(exc.errno), f"{self.what}: {exc}") from exc


def os_errors(what: str = "") -> _OSErrors:
    """Turn an ``OSError`` raised inside the ``with`` block into :class:`BackendError`."""
    return _OSErrors(what)
