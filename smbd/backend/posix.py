"""The POSIX share backend: every path confined to the share root, I/O off the event loop.

Confinement. A path is resolved one component at a time from a directory fd of the share
root: each intermediate directory is opened with ``openat(dirfd, name, O_PATH | O_DIRECTORY
| O_NOFOLLOW)`` and the final component with ``O_NOFOLLOW`` too, so a symlink anywhere in
the path is refused (ELOOP/ENOTDIR) by the kernel at the moment of the lookup. The
alternative, ``realpath()`` and a containment check, is racy: between the check and the
``open()`` a client with a second connection (or a local user) can swap a directory for a
symlink to ``/``. Walking with dir fds has no such window, because every lookup is relative
to an fd that already points inside the share and no lookup ever follows a link. The cost is
one ``openat`` per component, which is cheap next to a network round trip. Symlinks inside
the share are therefore not followed at all (Samba's ``wide links = no`` plus ``follow
symlinks = no``); enumeration leaves them out. ``..``, ``.``, empty components, absolute
names, NULs and NTFS-invalid characters never reach the kernel (see :mod:`.paths`).

Case. Names are created in the case the client sent and looked up as NTFS does: a
component that does not exist as sent is matched against its directory's names ignoring
case (the exact name wins). The match only chooses which name of an fd-confined directory
the next ``openat`` uses, so confinement is unchanged.

Opening an existing name is done in two steps: ``O_PATH | O_NOFOLLOW`` gives an fd for
whatever the name is without side effects, ``fstat`` checks it is a regular file or a
directory (never a device, FIFO or socket, whose open could block or act), and the file is
then reopened through ``/proc/self/fd/N`` with the access it needs -- the same inode,
whatever happens to the name meanwhile.

Threads. Every call that can block runs in ``trio.to_thread.run_sync`` under the share
server's ``CapacityLimiter``; the ``*_sync`` methods are the thread bodies (and what unit
tests call directly). Metadata calls that only touch the dentry and inode caches (path
walk, open, create, close, fstat and xattrs of an open inode) and page-cache reads run on
the event loop instead (:meth:`PosixShare.run_meta`, :meth:`PosixShare.read_now`), as
Samba's smbd does them: a thread round trip costs more than they do. OS errors leave as
:class:`~smbd.backend.errors.BackendError`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import stat as st
import struct
import threading
import time
from collections.abc import Callable, Sequence
from enum import IntEnum, IntFlag
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, TypeVar

import trio

from smbd.backend.attrs import (
    CREATE_ATTRIBUTES,
    DOSATTRIB_XATTR,
    STORED_ATTRIBUTES,
    DosAttrib,
    FileAttributes,
    decode_dosattrib,
    encode_dosattrib,
    filetime_to_ns,
    ns_to_filetime,
)
from smbd.backend.errors import BackendError, os_errors, status_for_errno
from smbd.backend.inline_writes import InlineWrites
from smbd.backend.lanes import Lanes
from smbd.backend.paths import STREAMS_DIR, Components, join_components
from smbd.wire.status import NTStatus

__all__ = [
    "CreateAction",
    "CreateOptions",
    "Disposition",
    "FileHandle",
    "FileStat",
    "FsInfo",
    "OpenResult",
    "PosixShare",
]

T = TypeVar("T")


class Disposition(IntEnum):
    """[MS-SMB2] 2.2.13 CreateDisposition."""

    SUPERSEDE = 0
    OPEN = 1
    CREATE = 2
    OPEN_IF = 3
    OVERWRITE = 4
    OVERWRITE_IF = 5


class CreateAction(IntEnum):
    """[MS-SMB2] 2.2.14 CreateAction."""

    SUPERSEDED = 0
    OPENED = 1
    CREATED = 2
    OVERWRITTEN = 3


class CreateOptions(IntFlag):
    """[MS-SMB2] 2.2.13 CreateOptions (the ones the backend acts on)."""

    DIRECTORY_FILE = 0x00000001
    WRITE_THROUGH = 0x00000002
    NON_DIRECTORY_FILE = 0x00000040
    DELETE_ON_CLOSE = 0x00001000


_ATTR_ARCHIVE = int(FileAttributes.ARCHIVE)
_ATTR_SPARSE = int(FileAttributes.SPARSE_FILE)
_ATTR_DIRECTORY = int(FileAttributes.DIRECTORY)
_ATTR_READONLY = int(FileAttributes.READONLY)
_ATTR_HIDDEN = int(FileAttributes.HIDDEN)
_ATTR_NORMAL = int(FileAttributes.NORMAL)


class FileStat(NamedTuple):
    """What QUERY_INFO and QUERY_DIRECTORY report about a file; times are FILETIMEs."""

    creation_time: int
    last_access_time: int
    last_write_time: int
    change_time: int
    allocation_size: int
    end_of_file: int
    attributes: int
    file_id: int
    dev: int
    nlink: int
    is_dir: bool
    ea_size: int = 0  # bytes of the FILE_FULL_EA_INFORMATION list of its EAs


class FsInfo(NamedTuple):
    total_units: int
    free_units: int  # available to the server's user
    bytes_per_unit: int
    name_max: int
    volume_serial: int


class FileHandle:
    """One open backend file. ``components`` follows renames made through this share.

    ``users`` counts the calls using ``fd`` right now (see :func:`pinned`): a close that
    comes while it is non-zero is left to the last of them, so that a descriptor number is
    never closed, and reused by another open, under a read or write in a worker thread.
    """

    __slots__ = ("close_pending", "components", "dev", "fd", "ino", "is_dir", "users", "writable")

    def __init__(
        self, fd: int, components: Components, *, is_dir: bool, dev: int, ino: int, writable: bool
    ) -> None:
        self.fd = fd
        self.components = components
        self.is_dir = is_dir
        self.dev = dev
        self.ino = ino
        self.writable = writable
        self.users = 0
        self.close_pending = False

    @property
    def key(self) -> tuple[int, int]:
        return (self.dev, self.ino)

    def __repr__(self) -> str:
        return f"<FileHandle fd={self.fd} {join_components(self.components)!r}>"


# Guards FileHandle.fd / users / close_pending: pins are taken on the event loop, closes
# happen on the loop or in worker threads. Held for a few instructions, never across I/O.
_FD_LOCK = threading.Lock()


class _Pinned:
    """What :func:`pinned` returns (a plain context manager: every data read and write
    takes one, and a generator-based one costs several times more)."""

    __slots__ = ("handles",)

    def __init__(self, handles: tuple[FileHandle, ...]) -> None:
        self.handles = handles

    def __enter__(self) -> None:
        with _FD_LOCK:
            for h in self.handles:
                h.users += 1

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        fds = []
        with _FD_LOCK:
            for h in self.handles:
                h.users -= 1
                if not h.users and h.close_pending and h.fd >= 0:
                    fds.append(h.fd)
                    h.fd = -1
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def pinned(*handles: FileHandle) -> _Pinned:
    """Keep the handles' descriptors open for the ``with`` block (a close meanwhile waits
    for it)."""
    return _Pinned(handles)


class OpenResult(NamedTuple):
    handle: FileHandle
    action: CreateAction
    pending_truncate: bool = False  # OVERWRITE/SUPERSEDE deferred: call overwrite_sync()


# -- libc calls Python does not wrap ---------------------------------------------------------

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
RENAME_NOREPLACE = 0x1
AT_FDCWD = -100

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int
_renameat2 = getattr(_libc, "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    _renameat2.restype = ctypes.c_int


FS_IOC_FIEMAP = 0xC020660B
_FIEMAP_HEAD = struct.Struct("=QQIIII")
_FIEMAP_EXTENT = struct.Struct("=QQQQQIIII")
_FIEMAP_MAX_EXTENTS = 64


def _exists(dirfd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # let the real lookup report it
    return True


def _gone(fd: int) -> bool:
    """Whether the open file ``fd`` has no name left."""
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return False


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit if unit else n


def _fiemap_bytes(fd: int) -> int | None:
    """Bytes of data extents (written or preallocated) of an open file, or None when the
    filesystem cannot say or the file has too many extents to ask cheaply."""
    size = _FIEMAP_HEAD.size + _FIEMAP_MAX_EXTENTS * _FIEMAP_EXTENT.size
    buf = bytearray(size)
    _FIEMAP_HEAD.pack_into(buf, 0, 0, 0xFFFF_FFFF_FFFF_FFFF, 0, 0, _FIEMAP_MAX_EXTENTS, 0)
    try:
        fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
    except OSError:
        return None
    mapped = _FIEMAP_HEAD.unpack_from(buf)[3]
    if mapped >= _FIEMAP_MAX_EXTENTS:
        return None
    total = 0
    for i in range(mapped):
        ext = _FIEMAP_EXTENT.unpack_from(buf, _FIEMAP_HEAD.size + i * _FIEMAP_EXTENT.size)
        total += ext[2]
    return total


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with flags (``os.posix_fallocate`` has none)."""
    if _fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def rename_noreplace(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    """renameat2(RENAME_NOREPLACE): atomically fails with EEXIST when ``dst`` exists."""
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 not available")
    if _renameat2(src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), RENAME_NOREPLACE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


_O_CLOEXEC = os.O_CLOEXEC
_O_DIR_PATH = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | _O_CLOEXEC
_O_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _O_CLOEXEC
_RW_CHUNK = 1 << 30
_RWF_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)
INLINE_READ_MAX = 1 << 20  # larger reads always go to a worker thread
INLINE_CLOSE_MAX = 1 << 20  # files written through a handle: larger ones close in a thread
INLINE_TRUNCATE_MAX = 1 << 20  # overwriting (truncating) larger files goes to a thread
SD_XATTR = "user.vmstor.sd"
EA_XATTR_PREFIX = (
    "user.vmstor.ea."  # largest single preadv/pwritev the kernel does in one go anyway
)


class PosixShare:
    """A share rooted at a local directory."""

    def __init__(
        self,
        root: Path | str,
        *,
        read_only: bool = False,
        limiter: trio.CapacityLimiter | None = None,
        hide_dot_files: bool = True,
        case_insensitive: bool = True,
        inline_metadata: bool = True,
        write_lanes: int = 4,
        inline_writes: InlineWrites | None = None,
    ) -> None:
        self.root = Path(root)
        self.read_only = read_only
        self.inline_metadata = inline_metadata
        self.hide_dot_files = hide_dot_files
        self.case_insensitive = case_insensitive
        self._limiter = limiter if limiter is not None else trio.CapacityLimiter(16)
        self._lanes = Lanes(write_lanes, name=f"write {self.root.name}")
        # data writes on the event loop while the kernel would not make them wait
        # (smbd.backend.inline_writes); None: every write goes to a lane
        self.inline_writes = inline_writes if inline_writes is not None else InlineWrites()
        with os_errors(f"share root {self.root}"):
            self._root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | _O_CLOEXEC)
        self._xattrs = True  # cleared the first time the filesystem refuses user xattrs
        self._root_dev = os.fstat(self._root_fd).st_dev

    def close(self) -> None:
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run a blocking backend call in a worker thread under the share's limiter; the
        FileHandles among ``args`` stay open until it returns (:func:`pinned`)."""
        try:
            with pinned(*[a for a in args if isinstance(a, FileHandle)]):
                return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except OSError as exc:  # a *_sync body missed one: still never escapes raw
            raise BackendError(status_for_errno(exc.errno), str(exc)) from exc

    async def run_meta(self, fn: Callable[..., T], *args: object) -> T:
        """Run a metadata call (path walk, open, create, close, fstat, xattrs of an open
        inode) on the event loop when ``inline_metadata`` is set, else as :meth:`run`.

        These calls work on the dentry and inode caches: a few microseconds each, where a
        worker-thread round trip costs 60 us on an idle machine and milliseconds on a busy
        one (Samba's smbd makes them synchronously too, and sends only data I/O and fsync
        to its thread pool). Whatever can take long -- data reads and writes, fsync,
        truncating or unlinking large files, FIEMAP, fallocate -- stays with :meth:`run`.
        Inline, it does not yield to the scheduler (the request's response does, when it
        is sent), so its result, an fd it opened say, is never lost to a cancellation."""
        if not self.inline_metadata:
            return await self.run(fn, *args)
        try:
            with pinned(*[a for a in args if isinstance(a, FileHandle)]):
                return fn(*args)
        except OSError as exc:
            raise BackendError(status_for_errno(exc.errno), str(exc)) from exc

    def cheap_to_close(self, handle: FileHandle) -> bool:
        """Whether closing ``handle`` is a metadata call: a file opened for writing may be
        flushed by close(2) (ext4 starts writeback of a file that was truncated and
        rewritten), so only one that small goes inline."""
        if not handle.writable or handle.fd < 0:
            return True
        try:
            return os.fstat(handle.fd).st_size <= INLINE_CLOSE_MAX
        except OSError:
            return False

    # -- path resolution ------------------------------------------------------------------

    def _walk(self, components: Sequence[str]) -> int:
        """An O_PATH fd of the directory ``components`` names (caller closes it).

        A missing or non-directory intermediate (symlinks included) is OBJECT_PATH_NOT_FOUND.
        """
        fd = os.dup(self._root_fd)
        try:
            for name in components:
                try:
                    nfd = os.open(name, _O_DIR_PATH, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        raise BackendError(NTStatus.OBJECT_PATH_NOT_FOUND, name) from exc
                    raise BackendError(status_for_errno(exc.errno), name) from exc
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _resolve(self, components: Components) -> tuple[int, Components]:
        """Walk to the parent of ``components`` and name the entry they mean: with
        ``case_insensitive`` (NTFS semantics, the default) a component that does not exist
        as sent is matched against the directory's names ignoring case, the exact name
        winning. Returns the parent's O_PATH fd and the components as they are on disk
        (the last one as sent when nothing matches: a name to create). Every lookup stays
        an ``openat`` relative to an fd inside the share, so confinement is unchanged."""
        fd = os.dup(self._root_fd)
        resolved: list[str] = []
        try:
            for i, name in enumerate(components):
                last = i == len(components) - 1
                actual = name
                if self.case_insensitive and not _exists(fd, name):
                    actual = self._lookup_case(fd, name) or name
                if last:
                    resolved.append(actual)
                    break
                try:
                    nfd = os.open(actual, _O_DIR_PATH, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        raise BackendError(NTStatus.OBJECT_PATH_NOT_FOUND, name) from exc
                    raise BackendError(status_for_errno(exc.errno), name) from exc
                os.close(fd)
                fd = nfd
                resolved.append(actual)
        except BaseException:
            os.close(fd)
            raise
        return fd, tuple(resolved)

    def _lookup_case(self, dirfd: int, name: str) -> str | None:
        """The entry of ``dirfd`` equal to ``name`` ignoring case (first in sorted order
        when several are), or None."""
        try:
            rfd = self._reopen(dirfd, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            names = os.listdir(rfd)
        except OSError:
            return None
        finally:
            os.close(rfd)
        key = name.upper()
        matches = sorted(n for n in names if n.upper() == key)
        return matches[0] if matches else None

    def _reopen(self, pfd: int, flags: int) -> int:
        return os.open(f"/proc/self/fd/{pfd}", flags | _O_CLOEXEC)

    # -- create / open --------------------------------------------------------------------

    def open_sync(
        self,
        components: Components,
        disposition: Disposition,
        options: int,
        *,
        want_write: bool,
        attributes: int = 0,
        now_ns: int | None = None,
        defer_truncate: bool = False,
    ) -> OpenResult:
        """Open or create per [MS-FSA] 2.1.5.1 (CreateDisposition, DIRECTORY_FILE,
        NON_DIRECTORY_FILE). ``want_write`` opens the fd read-write. Sharing and access
        policy is the caller's; this only does what the filesystem has to. With
        ``defer_truncate`` an existing file that OVERWRITE/SUPERSEDE would truncate is only
        opened (``pending_truncate`` set), so that the caller can check sharing first and
        then call :meth:`overwrite_sync`."""
        opts = CreateOptions(options & 0x1043)
        want_dir = bool(opts & CreateOptions.DIRECTORY_FILE)
        if want_dir and opts & CreateOptions.NON_DIRECTORY_FILE:
            raise BackendError(NTStatus.INVALID_PARAMETER, "DIRECTORY_FILE and NON_DIRECTORY_FILE")
        if want_dir and disposition not in (
            Disposition.OPEN,
            Disposition.CREATE,
            Disposition.OPEN_IF,
        ):
            raise BackendError(NTStatus.INVALID_PARAMETER, "directory with overwrite disposition")
        if not components:
            return self._open_root(disposition, opts)
        parent, components = self._resolve(components)
        try:
            for _attempt in range(4):  # a create/delete race with another client retries
                result = self._open_in(
                    parent,
                    components,
                    disposition,
                    opts,
                    want_write,
                    attributes,
                    now_ns,
                    defer_truncate,
                )
                if result is not None:
                    return result
            raise BackendError(NTStatus.SHARING_VIOLATION, "name keeps changing under us")
        finally:
            os.close(parent)

    def _open_root(self, disposition: Disposition, opts: CreateOptions) -> OpenResult:
        if opts & CreateOptions.NON_DIRECTORY_FILE:
            raise BackendError(NTStatus.FILE_IS_A_DIRECTORY, "share root")
        if disposition == Disposition.CREATE:
            raise BackendError(NTStatus.OBJECT_NAME_COLLISION, "share root")
        if disposition not in (Disposition.OPEN, Disposition.OPEN_IF):
            raise BackendError(NTStatus.INVALID_PARAMETER, "share root")
        with os_errors("open root"):
            fd = self._reopen(self._root_fd, os.O_RDONLY | os.O_DIRECTORY)
            s = os.fstat(fd)
        return OpenResult(
            FileHandle(fd, (), is_dir=True, dev=s.st_dev, ino=s.st_ino, writable=False),
            CreateAction.OPENED,
        )

    def _open_in(
        self,
        parent: int,
        components: Components,
        disposition: Disposition,
        opts: CreateOptions,
        want_write: bool,
        attributes: int,
        now_ns: int | None,
        defer_truncate: bool,
    ) -> OpenResult | None:
        name = components[-1]
        try:
            pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | _O_CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            return self._create_in(parent, components, disposition, opts, attributes, now_ns)
        except OSError as exc:
            raise BackendError(status_for_errno(exc.errno), name) from exc
        try:
            s = os.fstat(pfd)
            if disposition == Disposition.CREATE:
                raise BackendError(NTStatus.OBJECT_NAME_COLLISION, name)
            if st.S_ISDIR(s.st_mode):
                if opts & CreateOptions.NON_DIRECTORY_FILE:
                    raise BackendError(NTStatus.FILE_IS_A_DIRECTORY, name)
                if disposition not in (Disposition.OPEN, Disposition.OPEN_IF):
                    raise BackendError(NTStatus.FILE_IS_A_DIRECTORY, name)
                with os_errors(name):
                    fd = self._reopen(pfd, os.O_RDONLY | os.O_DIRECTORY)
                return OpenResult(
                    FileHandle(
                        fd, components, is_dir=True, dev=s.st_dev, ino=s.st_ino, writable=False
                    ),
                    CreateAction.OPENED,
                )
            if not st.S_ISREG(s.st_mode):
                # symlinks (never followed), devices, FIFOs, sockets
                raise BackendError(NTStatus.ACCESS_DENIED, f"{name}: not a regular file")
            if opts & CreateOptions.DIRECTORY_FILE:
                raise BackendError(NTStatus.NOT_A_DIRECTORY, name)
            truncate = disposition in (
                Disposition.SUPERSEDE,
                Disposition.OVERWRITE,
                Disposition.OVERWRITE_IF,
            )
            writable = want_write or truncate
            if writable and self.read_only:
                raise BackendError(NTStatus.ACCESS_DENIED, "read-only share")
            with os_errors(name):
                fd = self._reopen(pfd, os.O_RDWR if writable else os.O_RDONLY)
            handle = FileHandle(
                fd, components, is_dir=False, dev=s.st_dev, ino=s.st_ino, writable=writable
            )
            if not truncate:
                return OpenResult(handle, CreateAction.OPENED)
            action = (
                CreateAction.SUPERSEDED
                if disposition == Disposition.SUPERSEDE
                else CreateAction.OVERWRITTEN
            )
            if defer_truncate:
                return OpenResult(handle, action, pending_truncate=True)
            try:
                self.overwrite_sync(handle, attributes)
            except BaseException:
                os.close(fd)
                raise
            return OpenResult(handle, action)
        finally:
            os.close(pfd)

    def overwrite_sync(self, handle: FileHandle, attributes: int) -> None:
        """The overwrite part of OVERWRITE/OVERWRITE_IF/SUPERSEDE ([MS-FSA] 2.1.5.1.2.1):
        truncate to 0 and replace the attributes (ARCHIVE added)."""
        with os_errors("overwrite"):
            os.ftruncate(handle.fd, 0)
            self._store_dosattrib(
                handle.fd, (attributes & STORED_ATTRIBUTES) | FileAttributes.ARCHIVE, None
            )
            if attributes & FileAttributes.READONLY:
                os.fchmod(handle.fd, os.fstat(handle.fd).st_mode & ~0o222 & 0o7777)

    def _create_in(
        self,
        parent: int,
        components: Components,
        disposition: Disposition,
        opts: CreateOptions,
        attributes: int,
        now_ns: int | None,
    ) -> OpenResult | None:
        name = components[-1]
        if disposition in (Disposition.OPEN, Disposition.OVERWRITE):
            raise BackendError(NTStatus.OBJECT_NAME_NOT_FOUND, name)
        if self.read_only:
            raise BackendError(NTStatus.ACCESS_DENIED, "read-only share")
        creation = ns_to_filetime(now_ns) if now_ns is not None else 0
        try:
            if opts & CreateOptions.DIRECTORY_FILE:
                os.mkdir(name, 0o777, dir_fd=parent)
                fd = os.open(name, _O_DIR_READ, dir_fd=parent)
                is_dir = True
                stored = attributes & CREATE_ATTRIBUTES & ~FileAttributes.ARCHIVE
            else:
                fd = os.open(
                    name,
                    os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | _O_CLOEXEC,
                    0o666,
                    dir_fd=parent,
                )
                is_dir = False
                stored = (attributes & CREATE_ATTRIBUTES) | FileAttributes.ARCHIVE
        except FileExistsError:
            if disposition == Disposition.CREATE:
                raise BackendError(NTStatus.OBJECT_NAME_COLLISION, name) from None
            return None  # created by someone else meanwhile: open it instead
        except OSError as exc:
            raise BackendError(status_for_errno(exc.errno), name) from exc
        try:
            s = os.fstat(fd)
            if components[0] != STREAMS_DIR:
                # A new file has no streams: a folder left for this inode number by a file
                # deleted outside SMB belongs to that file, not to this one.
                self._drop_streams(s.st_ino)
            self._store_dosattrib(fd, stored, creation or ns_to_filetime(s.st_mtime_ns))
            if attributes & FileAttributes.READONLY and not is_dir:
                os.fchmod(fd, s.st_mode & ~0o222 & 0o7777)
        except BaseException:
            os.close(fd)
            raise
        return OpenResult(
            FileHandle(
                fd, components, is_dir=is_dir, dev=s.st_dev, ino=s.st_ino, writable=not is_dir
            ),
            CreateAction.CREATED,
        )

    async def open(
        self,
        components: Components,
        disposition: Disposition,
        options: int,
        *,
        want_write: bool,
        attributes: int = 0,
        now_ns: int | None = None,
        defer_truncate: bool = False,
    ) -> OpenResult:
        def body() -> OpenResult:
            return self.open_sync(
                components,
                disposition,
                options,
                want_write=want_write,
                attributes=attributes,
                now_ns=now_ns,
                defer_truncate=defer_truncate,
            )

        return await self.run(body)

    def close_sync(self, handle: FileHandle) -> None:
        """Close the descriptor, or, while a call still uses it, leave that to the call."""
        with _FD_LOCK:
            if handle.users:
                handle.close_pending = True
                return
            fd, handle.fd = handle.fd, -1
        if fd >= 0:
            os.close(fd)

    async def close_handle(self, handle: FileHandle) -> None:
        # not through run(): that would pin the handle being closed
        await trio.to_thread.run_sync(self.close_sync, handle, limiter=self._limiter)

    # -- attributes -----------------------------------------------------------------------

    def _load_dosattrib(self, fd: int, name_path: str | None = None) -> DosAttrib | None:
        if not self._xattrs:
            return None
        try:
            if name_path is None:
                blob = os.getxattr(fd, DOSATTRIB_XATTR)
            else:
                blob = os.getxattr(name_path, DOSATTRIB_XATTR, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                self._xattrs = False
            return None
        return decode_dosattrib(blob)

    def _store_dosattrib(
        self,
        fd: int,
        attributes: int,
        creation: int | None,
        change: tuple[int, int] | None = None,
    ) -> None:
        """Write the record; ``None`` for ``creation``/``change`` keeps what is stored."""
        if not self._xattrs:
            return
        old = self._load_dosattrib(fd) if creation is None or change is None else None
        if creation is None:
            creation = old.creation_time if old else 0
        if change is None:
            change = (old.change_time, old.change_mtime_ns) if old else (0, 0)
        record = DosAttrib(attributes, creation, change[0], change[1])
        try:
            os.setxattr(fd, DOSATTRIB_XATTR, encode_dosattrib(record))
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                self._xattrs = False
            elif exc.errno not in (errno.EPERM, errno.EACCES):
                raise BackendError(status_for_errno(exc.errno), "store attributes") from exc

    def _make_stat(self, s: os.stat_result, dos: DosAttrib | None, name: str) -> FileStat:
        # every stat comes here (CREATE, QUERY_INFO, directory listings): plain ints, not
        # FileAttributes arithmetic, which builds a flag object per operation
        is_dir = st.S_ISDIR(s.st_mode)
        change = ns_to_filetime(s.st_ctime_ns)
        if dos is not None:
            attributes, creation = dos.attributes, dos.creation_time
            if dos.change_time and dos.change_mtime_ns == s.st_mtime_ns:
                change = dos.change_time
        else:
            attributes, creation = (0 if is_dir else _ATTR_ARCHIVE), 0
        if not creation:
            creation = ns_to_filetime(min(s.st_mtime_ns, s.st_ctime_ns))
        if is_dir:
            attributes = (attributes & ~(_ATTR_ARCHIVE | _ATTR_SPARSE)) | _ATTR_DIRECTORY
        elif not s.st_mode & 0o222:
            attributes |= _ATTR_READONLY
        if self.hide_dot_files and name.startswith(".") and name not in (".", ".."):
            attributes |= _ATTR_HIDDEN
        if not attributes:
            attributes = _ATTR_NORMAL
        return FileStat(
            creation,
            ns_to_filetime(s.st_atime_ns),
            ns_to_filetime(s.st_mtime_ns),
            change,
            0 if is_dir else s.st_blocks * 512,  # allocation
            0 if is_dir else s.st_size,  # end of file
            int(attributes),
            s.st_ino,
            s.st_dev,
            s.st_nlink,
            is_dir,
        )

    def stat_sync(self, handle: FileHandle) -> FileStat:
        st = self._stat(handle, fiemap=True)
        assert st is not None
        return st

    def _stat(self, handle: FileHandle, *, fiemap: bool) -> FileStat | None:
        """The file's information; None when it needs FIEMAP and ``fiemap`` is false."""
        with os_errors("fstat"):
            s = os.fstat(handle.fd)
        name = handle.components[-1] if handle.components else ""
        st = self._make_stat(s, self._load_dosattrib(handle.fd), name)
        ea = self._ea_size(handle.fd)
        if ea:
            st = st._replace(ea_size=ea)
        if not st.is_dir and st.allocation_size > _round_up(s.st_size, s.st_blksize):
            # More blocks than the data needs: space reserved past the end of file, or an
            # external xattr block (which is not the file's allocation). FIEMAP tells.
            if not fiemap:
                return None
            data = _fiemap_bytes(handle.fd)
            if data is not None:
                st = st._replace(allocation_size=data)
        return st

    async def stat(self, handle: FileHandle) -> FileStat:
        """fstat and the xattrs of an open file read its in-memory inode (~8 us), far less
        than a worker thread round trip (60 us idle, milliseconds on a busy machine): they
        run on the event loop. FIEMAP, which may read extent blocks, goes to a thread."""
        try:
            st = self._stat(handle, fiemap=False)
        except OSError as exc:
            raise BackendError(status_for_errno(exc.errno), str(exc)) from exc
        if st is None:
            return await self.run(self.stat_sync, handle)
        return st  # no scheduler pass: the response that follows is one

    def stat_entry_sync(self, directory: FileHandle, name: str) -> FileStat | None:
        """Stat one name of an open directory for enumeration; None for what a client cannot
        open (symlinks, devices, vanished entries)."""
        try:
            s = os.stat(name, dir_fd=directory.fd, follow_symlinks=False)
        except OSError:
            return None
        if not (st.S_ISREG(s.st_mode) or st.S_ISDIR(s.st_mode)):
            return None
        dos = self._load_dosattrib(directory.fd, f"/proc/self/fd/{directory.fd}/{name}")
        st_ = self._make_stat(s, dos, name)
        ea = self._ea_size(f"/proc/self/fd/{directory.fd}/{name}")
        if ea:
            st_ = st_._replace(ea_size=ea)
        if not st_.is_dir and st_.allocation_size > _round_up(s.st_size, s.st_blksize):
            data = self._entry_fiemap(directory.fd, name, s)
            if data is not None:
                st_ = st_._replace(allocation_size=data)
        return st_

    def _entry_fiemap(self, dirfd: int, name: str, s: os.stat_result) -> int | None:
        """FIEMAP of a directory entry, opened without following links or opening anything
        that is not the regular file just stat'ed."""
        try:
            pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | _O_CLOEXEC, dir_fd=dirfd)
        except OSError:
            return None
        try:
            p = os.fstat(pfd)
            if not st.S_ISREG(p.st_mode) or (p.st_dev, p.st_ino) != (s.st_dev, s.st_ino):
                return None
            fd = self._reopen(pfd, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return None
        finally:
            os.close(pfd)
        try:
            return _fiemap_bytes(fd)
        finally:
            os.close(fd)

    def set_basic_sync(
        self,
        handle: FileHandle,
        *,
        creation_time: int = 0,
        last_access_time: int = 0,
        last_write_time: int = 0,
        change_time: int = 0,
        attributes: int = 0,
    ) -> None:
        """FileBasicInformation ([MS-FSA] 2.1.5.14.2): 0 means leave unchanged (-1 and -2,
        which stop automatic updates, are treated the same). ChangeTime is remembered next
        to the mtime it was set with (see :class:`~smbd.backend.attrs.DosAttrib`)."""
        with os_errors("set basic info"):
            s = os.fstat(handle.fd)
            if last_access_time > 0 or last_write_time > 0:
                atime = filetime_to_ns(last_access_time) if last_access_time > 0 else s.st_atime_ns
                mtime = filetime_to_ns(last_write_time) if last_write_time > 0 else s.st_mtime_ns
                os.utime(handle.fd, ns=(atime, mtime))
                s = os.fstat(handle.fd)
            if not (attributes or creation_time > 0 or change_time > 0):
                return
            dos = self._load_dosattrib(handle.fd)
            if dos is None:
                dos = DosAttrib(0 if handle.is_dir else FileAttributes.ARCHIVE, 0)
            stored = dos.attributes
            if attributes:
                stored = (stored & FileAttributes.SPARSE_FILE) | (attributes & STORED_ATTRIBUTES)
                if not handle.is_dir:
                    ro = bool(attributes & FileAttributes.READONLY)
                    mode = s.st_mode & 0o7777
                    new_mode = (mode & ~0o222) if ro else (mode | 0o200)
                    if new_mode != mode:
                        os.fchmod(handle.fd, new_mode)
            creation = creation_time if creation_time > 0 else dos.creation_time
            change = (
                (change_time, s.st_mtime_ns)
                if change_time > 0
                else (dos.change_time, dos.change_mtime_ns)
            )
            self._store_dosattrib(handle.fd, stored, creation, change)

    def set_sparse_sync(self, handle: FileHandle, sparse: bool) -> None:
        """FSCTL_SET_SPARSE: only the attribute changes; the data stays as it is (holes are
        kept either way, and a non-sparse file never gets holes punched by SET_ZERO_DATA)."""
        dos = self._load_dosattrib(handle.fd)
        stored = dos.attributes if dos else FileAttributes.ARCHIVE
        stored = (
            (stored | FileAttributes.SPARSE_FILE)
            if sparse
            else (stored & ~FileAttributes.SPARSE_FILE)
        )
        self._store_dosattrib(handle.fd, stored, None, None)

    def is_sparse_sync(self, handle: FileHandle) -> bool:
        dos = self._load_dosattrib(handle.fd)
        return bool(dos and dos.attributes & FileAttributes.SPARSE_FILE)

    def get_sd_sync(self, handle: FileHandle) -> bytes | None:
        """The security descriptor stored for the file (``user.vmstor.sd``), or None."""
        if not self._xattrs:
            return None
        try:
            return os.getxattr(handle.fd, SD_XATTR)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                self._xattrs = False
            return None

    def set_sd_sync(self, handle: FileHandle, blob: bytes) -> None:
        if not self._xattrs:
            raise BackendError(NTStatus.NOT_SUPPORTED, "no extended attributes on this share")
        with os_errors("store security descriptor"):
            os.setxattr(handle.fd, SD_XATTR, blob)

    def list_eas_sync(self, handle: FileHandle) -> list[tuple[bytes, bytes]]:
        """The file's extended attributes as a client set them (``user.vmstor.ea.NAME``),
        names in upper case as NTFS keeps them, sorted."""
        if not self._xattrs:
            return []
        out = []
        with os_errors("list EAs"):
            for key in os.listxattr(handle.fd):
                if key.startswith(EA_XATTR_PREFIX):
                    try:
                        value = os.getxattr(handle.fd, key)
                    except OSError:
                        continue
                    out.append((key[len(EA_XATTR_PREFIX) :].encode("ascii", "replace"), value))
        return sorted(out)

    def _ea_size(self, target: int | str) -> int:
        """FileEaInformation.EaSize of a file (an fd, or a path that is not followed)."""
        if not self._xattrs:
            return 0
        try:
            if isinstance(target, int):
                keys = os.listxattr(target)
            else:
                keys = os.listxattr(target, follow_symlinks=False)
            sizes = []
            for key in keys:
                if key.startswith(EA_XATTR_PREFIX):
                    if isinstance(target, int):
                        value = os.getxattr(target, key)
                    else:
                        value = os.getxattr(target, key, follow_symlinks=False)
                    sizes.append(8 + len(key) - len(EA_XATTR_PREFIX) + 1 + len(value))
        except OSError:
            return 0
        # entries are 4-byte aligned except the last ([MS-FSCC] 2.4.15)
        return sum(_round_up(n, 4) for n in sizes[:-1]) + (sizes[-1] if sizes else 0)

    def set_ea_sync(self, handle: FileHandle, name: bytes, value: bytes) -> None:
        """Set one EA; an empty value deletes it ([MS-FSA] 2.1.5.14.5)."""
        if not self._xattrs:
            raise BackendError(NTStatus.EAS_NOT_SUPPORTED, "no extended attributes on this share")
        key = EA_XATTR_PREFIX + name.decode("ascii").upper()
        try:
            if value:
                os.setxattr(handle.fd, key, value)
            else:
                os.removexattr(handle.fd, key)
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                return
            if exc.errno in (errno.E2BIG, errno.ENOSPC, errno.ERANGE):
                raise BackendError(NTStatus.EA_TOO_LARGE, "EA does not fit") from exc
            raise BackendError(status_for_errno(exc.errno), "set EA") from exc

    # -- data -----------------------------------------------------------------------------

    def read_into_sync(self, handle: FileHandle, buf: memoryview, offset: int) -> int:
        """Fill ``buf`` from ``offset``; returns the byte count (short only at end of file)."""
        done = 0
        with os_errors("read"):
            while done < len(buf):
                n = os.preadv(handle.fd, [buf[done : done + _RW_CHUNK]], offset + done)
                if n == 0:
                    break
                done += n
        return done

    def read_now(self, handle: FileHandle, buf: memoryview, offset: int) -> int | None:
        """Page-cache hits, served on the event loop: ``preadv(RWF_NOWAIT)`` never blocks
        and a worker thread costs ~100 us a call, more than copying a cached MiB. Returns
        the count read (0 at end of file; short only at end of file or where the cached
        part ends), or None when nothing could be read without waiting."""
        if not _RWF_NOWAIT or len(buf) > INLINE_READ_MAX or not len(buf):
            return None
        try:
            with pinned(handle):
                return os.preadv(handle.fd, [buf], offset, _RWF_NOWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return None
            raise BackendError(status_for_errno(exc.errno), f"read: {exc}") from exc

    async def read_into(self, handle: FileHandle, buf: memoryview, offset: int) -> int:
        n = self.read_now(handle, buf, offset)
        if n is None:
            return await self.run(self.read_into_sync, handle, buf, offset)
        if self._read_done(handle, buf, offset, n):
            return n  # no scheduler pass: the response that follows is one
        return n + await self.run(self.read_into_sync, handle, buf[n:], offset + n)

    def read_cached(self, handle: FileHandle, buf: memoryview, offset: int) -> int | None:
        """What :meth:`read_into` would return, when the page cache holds all of it (no
        disk, no thread); None when some of it would have to wait."""
        n = self.read_now(handle, buf, offset)
        if n is None or not self._read_done(handle, buf, offset, n):
            return None
        return n

    @staticmethod
    def _read_done(handle: FileHandle, buf: memoryview, offset: int, n: int) -> bool:
        """Whether ``n`` bytes read at ``offset`` are all a read into ``buf`` gets: all it
        asked for, or (RWF_NOWAIT reads nothing rather than block) up to the end of the
        file; a short count before the end means the cached part ended there."""
        if n == len(buf) or n == 0:
            return True
        try:
            with pinned(handle):
                return offset + n >= os.fstat(handle.fd).st_size
        except OSError:
            return False

    def write_sync(
        self, handle: FileHandle, data: memoryview, offset: int, *, sync: bool = False
    ) -> int:
        """Write all of ``data`` at ``offset``; with ``sync`` also fdatasync before returning.
        Writing past the end leaves a hole: the file stays sparse."""
        done = 0
        with os_errors("write"):
            while done < len(data):
                n = os.pwritev(handle.fd, [data[done : done + _RW_CHUNK]], offset + done)
                if n <= 0:
                    raise OSError(errno.ENOSPC, "short write")
                done += n
            if sync:
                os.fdatasync(handle.fd)
        return done

    async def write(
        self, handle: FileHandle, data: memoryview, offset: int, *, sync: bool = False
    ) -> int:
        """Data writes go to the file's lane (:mod:`smbd.backend.lanes`): one thread per
        lane runs them in order, so writes to one file do not contend for its inode lock
        and a burst of them costs one wakeup of the event loop, not one per write. While
        the kernel would not make a writer wait, a write no larger than 1 MiB to a file
        with nothing queued in its lane runs on the event loop instead
        (:mod:`smbd.backend.inline_writes`); write-through writes always take the lane."""
        if not sync and self.writes_inline(handle, len(data)):
            policy = self.inline_writes
            start = time.monotonic()
            try:
                with pinned(handle):
                    return self.write_sync(handle, data, offset)
            except OSError as exc:
                raise BackendError(status_for_errno(exc.errno), str(exc)) from exc
            finally:
                policy.took(time.monotonic() - start)
        lane = self._lanes.lane(handle.ino)
        try:
            with pinned(handle):
                if sync:
                    return await lane.run(self._write_through, handle, data, offset)
                return await lane.run(self.write_sync, handle, data, offset)
        except OSError as exc:
            raise BackendError(status_for_errno(exc.errno), str(exc)) from exc

    def writes_inline(self, handle: FileHandle, size: int) -> bool:
        """Whether :meth:`write` would write ``size`` bytes to ``handle`` on the event loop
        now: nothing queued in the file's lane (so that no write is overtaken) and nothing
        that makes the kernel throttle writers (:mod:`smbd.backend.inline_writes`); the
        copy into the page cache then costs less than the lane's thread handoff."""
        return not self._lanes.lane(handle.ino).pending and self.inline_writes.allowed(size)

    def _write_through(self, handle: FileHandle, data: memoryview, offset: int) -> int:
        return self.write_sync(handle, data, offset, sync=True)

    def flush_sync(self, handle: FileHandle) -> None:
        with os_errors("fsync"):
            os.fsync(handle.fd)

    async def flush(self, handle: FileHandle) -> None:
        await self.run(self.flush_sync, handle)

    def set_end_of_file_sync(self, handle: FileHandle, size: int) -> None:
        """Truncate or extend; an extension is a hole (no blocks allocated)."""
        with os_errors("ftruncate"):
            os.ftruncate(handle.fd, size)

    def set_allocation_sync(self, handle: FileHandle, size: int) -> None:
        """[MS-FSA] 2.1.5.14.1 FileAllocationInformation: below the end of file truncates;
        above it reserves blocks (fallocate KEEP_SIZE) unless the file is sparse."""
        with os_errors("allocation"):
            eof = os.fstat(handle.fd).st_size
            if size < eof:
                os.ftruncate(handle.fd, size)
                return
            if size > eof and not self.is_sparse_sync(handle):
                try:
                    fallocate(handle.fd, FALLOC_FL_KEEP_SIZE, 0, size)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                        raise

    def zero_range_sync(self, handle: FileHandle, offset: int, end: int) -> None:
        """FSCTL_SET_ZERO_DATA ([MS-FSA] 2.1.5.10.37): zero [offset, end) clipped to the end
        of file. A sparse file gets a hole (PUNCH_HOLE|KEEP_SIZE); a non-sparse one stays
        allocated (ZERO_RANGE, or written zeros where the filesystem has neither)."""
        with os_errors("zero data"):
            eof = os.fstat(handle.fd).st_size
            end = min(end, eof)
            if end <= offset:
                return
            modes = (
                [FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE]
                if self.is_sparse_sync(handle)
                else [FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE]
            )
            for mode in modes:
                try:
                    fallocate(handle.fd, mode, offset, end - offset)
                    return
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
                        raise
            zeros = memoryview(bytes(min(end - offset, 1 << 20)))
            pos = offset
            while pos < end:
                n = os.pwrite(handle.fd, zeros[: end - pos], pos)
                pos += n

    def allocated_ranges_sync(
        self, handle: FileHandle, offset: int, length: int, max_ranges: int
    ) -> tuple[list[tuple[int, int]], bool]:
        """FSCTL_QUERY_ALLOCATED_RANGES via SEEK_DATA/SEEK_HOLE: the data ranges inside
        [offset, offset+length), at most ``max_ranges``; the flag says more were left out."""
        ranges: list[tuple[int, int]] = []
        with os_errors("allocated ranges"):
            eof = os.fstat(handle.fd).st_size
            end = min(offset + length, eof)
            pos = offset
            while pos < end:
                try:
                    data = os.lseek(handle.fd, pos, os.SEEK_DATA)
                except OSError as exc:
                    if exc.errno == errno.ENXIO:  # no data after pos
                        break
                    raise
                if data >= end:
                    break
                hole = min(os.lseek(handle.fd, data, os.SEEK_HOLE), end)
                if len(ranges) == max_ranges:
                    return ranges, True
                ranges.append((data, hole - data))
                pos = hole
        return ranges, False

    def copy_range_sync(
        self, src: FileHandle, dst: FileHandle, src_offset: int, dst_offset: int, length: int
    ) -> int:
        """Server-side copy with copy_file_range (reflink/in-kernel copy where the filesystem
        has it); falls back to pread/pwrite across filesystems. Returns bytes copied (short
        only when the source ends)."""
        done = 0
        with os_errors("copy range"):
            while done < length:
                try:
                    n = os.copy_file_range(
                        src.fd, dst.fd, length - done, src_offset + done, dst_offset + done
                    )
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                        raise
                    n = self._copy_slow(
                        src, dst, src_offset + done, dst_offset + done, length - done
                    )
                if n == 0:
                    break
                done += n
        return done

    def _copy_slow(self, src: FileHandle, dst: FileHandle, so: int, do: int, length: int) -> int:
        buf = bytearray(min(length, 1 << 20))
        n = os.preadv(src.fd, [buf], so)
        if n:
            os.pwrite(dst.fd, memoryview(buf)[:n], do)
        return n

    # -- namespace ------------------------------------------------------------------------

    def _check_same(self, parent: int, name: str, handle: FileHandle) -> None:
        """The name still refers to the handle's file (not a replacement or a symlink)."""
        try:
            s = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise BackendError(status_for_errno(exc.errno), name) from exc
        if (s.st_dev, s.st_ino) != handle.key:
            raise BackendError(NTStatus.FILE_RENAMED, f"{name} was replaced")

    def rename_sync(self, handle: FileHandle, target: Components, replace: bool) -> None:
        """[MS-FSA] 2.1.5.14.11 FileRenameInformation, confined like every other path."""
        if not handle.components:
            raise BackendError(NTStatus.ACCESS_DENIED, "cannot rename the share root")
        if not target:
            raise BackendError(NTStatus.OBJECT_NAME_INVALID, "empty rename target")
        if self.read_only:
            raise BackendError(NTStatus.ACCESS_DENIED, "read-only share")
        if handle.is_dir and target[: len(handle.components)] == handle.components:
            raise BackendError(NTStatus.INVALID_PARAMETER, "directory into itself")
        replaced: int | None = None
        src_dir = self._walk(handle.components[:-1])
        try:
            dst_dir, resolved = self._resolve(target)
            try:
                self._check_same(src_dir, handle.components[-1], handle)
                src, dst, found = handle.components[-1], target[-1], resolved[-1]
                if (*resolved[:-1], dst) == handle.components:
                    return
                try:
                    existing = os.stat(found, dir_fd=dst_dir, follow_symlinks=False)
                except FileNotFoundError:
                    existing = None
                except OSError as exc:
                    raise BackendError(status_for_errno(exc.errno), dst) from exc
                if existing is not None and (existing.st_dev, existing.st_ino) == handle.key:
                    existing = None  # a change of case of the file's own name
                if existing is not None:
                    if not replace:
                        raise BackendError(NTStatus.OBJECT_NAME_COLLISION, dst)
                    if st.S_ISDIR(existing.st_mode) or handle.is_dir:
                        raise BackendError(
                            NTStatus.ACCESS_DENIED, f"{dst}: cannot replace a directory"
                        )
                    if existing.st_nlink == 1:
                        replaced = existing.st_ino  # its named streams go with it
                    if found != dst:  # replacing a name that differs only in case
                        with os_errors(found):
                            os.unlink(found, dir_fd=dst_dir)
                        existing = None
                try:
                    if existing is None:
                        rename_noreplace(src_dir, src, dst_dir, dst)
                    else:
                        os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
                except OSError as exc:
                    if exc.errno == errno.EEXIST:
                        raise BackendError(NTStatus.OBJECT_NAME_COLLISION, dst) from exc
                    raise BackendError(status_for_errno(exc.errno), dst) from exc
                handle.components = (*resolved[:-1], dst)
            finally:
                os.close(dst_dir)
        finally:
            os.close(src_dir)
        if replaced is not None:
            self._drop_streams(replaced)

    def target_exists_sync(self, target: Components) -> tuple[int, int] | None:
        """(dev, ino) of what ``target`` names now, or None (for the rename open check)."""
        if not target:
            return None
        try:
            parent, resolved = self._resolve(target)
        except BackendError:
            return None
        try:
            s = os.stat(resolved[-1], dir_fd=parent, follow_symlinks=False)
            return (s.st_dev, s.st_ino)
        except OSError:
            return None
        finally:
            os.close(parent)

    def unlink_sync(self, handle: FileHandle) -> None:
        """Remove the name of an open file or empty directory (delete-on-close)."""
        if not handle.components:
            raise BackendError(NTStatus.ACCESS_DENIED, "cannot delete the share root")
        parent = self._walk(handle.components[:-1])
        try:
            name = handle.components[-1]
            self._check_same(parent, name, handle)
            with os_errors(name):
                if handle.is_dir:
                    os.rmdir(name, dir_fd=parent)
                else:
                    os.unlink(name, dir_fd=parent)
        finally:
            os.close(parent)
        if handle.components[0] != STREAMS_DIR and (handle.is_dir or _gone(handle.fd)):
            self._drop_streams(handle.ino)

    # -- named streams -----------------------------------------------------------------------
    # The data of ``file:name`` lives in ``STREAMS_DIR/<inode of file>/<name>`` under the
    # share root: a plain file, so reads, writes, sparse ranges and copies work on it as on
    # any other, and an open of it is an open of its own (share modes per stream). The
    # folder of a file goes when the file's last name does.

    def _streams_of(self, ino: int, *, create: bool) -> int | None:
        """An O_PATH fd of the stream folder of inode ``ino`` (None when it does not exist
        and ``create`` is false)."""
        names = (STREAMS_DIR, str(ino))
        fd = os.dup(self._root_fd)
        try:
            for name in names:
                try:
                    nfd = os.open(name, _O_DIR_PATH, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o700, dir_fd=fd)
                    nfd = os.open(name, _O_DIR_PATH, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def stream_components_sync(self, base: Components, stream: str, create: bool) -> Components:
        """Where the stream ``stream`` of file ``base`` lives, as components to open. With
        ``create`` a missing base file is created empty (opening ``new:s`` for writing
        makes ``new``), as are the folders; without, a missing base is
        OBJECT_NAME_NOT_FOUND."""
        disposition = Disposition.OPEN_IF if create else Disposition.OPEN
        r = self.open_sync(base, disposition, 0, want_write=False)
        try:
            ino = r.handle.ino
        finally:
            self.close_sync(r.handle)
        fd = self._streams_of(ino, create=create)
        if fd is None:  # the file has no streams at all
            raise BackendError(NTStatus.OBJECT_NAME_NOT_FOUND, stream)
        os.close(fd)
        return (STREAMS_DIR, str(ino), stream)

    def list_streams_sync(self, handle: FileHandle) -> list[tuple[str, int, int]]:
        """The named streams of an open file (or of the file an open stream belongs to)
        as (name, size, allocation size), sorted by name."""
        comps = handle.components
        ino = int(comps[1]) if len(comps) == 3 and comps[0] == STREAMS_DIR else handle.ino
        fd = self._streams_of(ino, create=False)
        if fd is None:
            return []
        try:
            rfd = self._reopen(fd, os.O_RDONLY | os.O_DIRECTORY)
        finally:
            os.close(fd)
        out = []
        try:
            for name in sorted(os.listdir(rfd)):
                try:
                    s = os.stat(name, dir_fd=rfd, follow_symlinks=False)
                except OSError:
                    continue
                if st.S_ISREG(s.st_mode):
                    out.append((name, s.st_size, s.st_blocks * 512))
        finally:
            os.close(rfd)
        return out

    def _drop_streams(self, ino: int) -> None:
        """Remove the stream folder of a file whose last name is gone."""
        fd = self._streams_of(ino, create=False)
        if fd is None:
            return
        try:
            rfd = self._reopen(fd, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for name in os.listdir(rfd):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=rfd)
            finally:
                os.close(rfd)
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            parent = self._walk((STREAMS_DIR,))
            try:
                os.rmdir(str(ino), dir_fd=parent)
            finally:
                os.close(parent)

    def is_empty_dir_sync(self, handle: FileHandle) -> bool:
        with os_errors("scandir"), os.scandir(handle.fd) as it:
            return next(iter(it), None) is None

    def list_names_sync(self, handle: FileHandle) -> list[str]:
        """The names in an open directory (without ``.`` and ``..``), in directory order.
        Names that are not valid UTF-8 cannot be expressed to a client and are left out."""
        with os_errors("listdir"):
            names = os.listdir(handle.fd)
        out = []
        for n in names:
            if n == STREAMS_DIR and not handle.components:
                continue
            try:
                n.encode("utf-8")
            except UnicodeEncodeError:
                continue
            out.append(n)
        return out

    def fs_info_sync(self) -> FsInfo:
        with os_errors("statvfs"):
            v = os.statvfs(self._root_fd)
        return FsInfo(
            total_units=v.f_blocks,
            free_units=v.f_bavail,
            bytes_per_unit=v.f_frsize,
            name_max=v.f_namemax,
            volume_serial=self._root_dev & 0xFFFFFFFF,
        )
