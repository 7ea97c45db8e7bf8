"""LUN backends: the only place the SCSI target touches the disk.

A :class:`FileBackend` keeps a logical unit in one regular file, either sparse
(thin provisioned: UNMAP punches holes with ``fallocate(PUNCH_HOLE|KEEP_SIZE)``,
so deallocated blocks read back as zeros, LBPRZ=1) or fully allocated (thick).
Blocking calls run in worker threads through ``trio.to_thread.run_sync`` with a
:class:`trio.CapacityLimiter`; data moves with ``os.preadv``/``os.pwritev``
straight from/into the transport's buffers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Sequence
from typing import Protocol

import trio

__all__ = ["Backend", "FileBackend", "punch_hole"]

Buffer = bytes | bytearray | memoryview

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

# Deallocated extents are reported by GET LBA STATUS per SEEK_DATA/SEEK_HOLE.
MAPPED = 0
DEALLOCATED = 1

_RWF_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)
INLINE_READ_MAX = 1 << 20  # larger reads always go to a worker thread

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int

# cachestat(2) (Linux 6.5): how many pages of a file range the page cache holds, without
# touching them; the zero-copy READ path sends only ranges it holds entirely.
_SYS_CACHESTAT = 451  # the same number on every architecture (the unified syscall table)
_PAGE = os.sysconf("SC_PAGE_SIZE")
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long]


class _CachestatRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Cachestat(ctypes.Structure):
    _fields_ = [
        ("nr_cache", ctypes.c_uint64),
        ("nr_dirty", ctypes.c_uint64),
        ("nr_writeback", ctypes.c_uint64),
        ("nr_evicted", ctypes.c_uint64),
        ("nr_recently_evicted", ctypes.c_uint64),
    ]


def _fallocate_mode(fd: int, mode: int, offset: int, length: int) -> None:
    if _fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Deallocate ``length`` bytes at ``offset``; the range then reads as zeros.

    Filesystems without hole punching get the range zeroed instead, so the
    LBPRZ promise holds either way.
    """
    if length <= 0:
        return
    try:
        _fallocate_mode(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        _write_zeroes(fd, offset, length)


def _write_zeroes(fd: int, offset: int, length: int) -> None:
    chunk = bytes(min(length, 1 << 20))
    end = offset + length
    while offset < end:
        n = os.pwrite(fd, memoryview(chunk)[: min(len(chunk), end - offset)], offset)
        offset += n


class Backend(Protocol):
    """What a logical unit needs from its storage.  Offsets are in blocks."""

    block_size: int
    num_blocks: int
    thin: bool

    async def read(self, lba: int, blocks: int) -> bytearray: ...
    def read_now(self, lba: int, blocks: int) -> bytearray | None:
        """The data if it can be had without blocking (cached), else None."""

    def read_now_into(self, lba: int, dest: memoryview) -> bool:
        """Fill ``dest`` (whole blocks) from ``lba`` if that needs no waiting (cached);
        False (``dest`` then holds nothing useful) when it would."""

    def cached(self, lba: int, blocks: int) -> bool:
        """Whether the page cache holds all of the range (reading it would not wait).
        False when that cannot be told."""

    def fileno(self) -> int:
        """The file holding the unit, block ``lba`` at byte ``lba * block_size``; -1
        once closed."""

    async def write(self, lba: int, data: Sequence[Buffer], *, fua: bool = False) -> None: ...
    async def flush(self) -> None: ...
    async def unmap(self, extents: Sequence[tuple[int, int]]) -> None: ...
    async def write_same(self, lba: int, blocks: int, block: Buffer) -> None: ...
    async def lba_status(self, lba: int) -> tuple[int, int]: ...
    def close(self) -> None: ...


class FileBackend:
    """A logical unit kept in a regular file (sparse for thin, allocated for thick)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        block_size: int = 512,
        thin: bool = True,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        if block_size not in (512, 4096):
            raise ValueError("block size must be 512 or 4096")
        self.path = os.fspath(path)
        self.block_size = block_size
        self.thin = thin
        self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        size = os.fstat(self._fd).st_size
        self.num_blocks = size // block_size
        self._limiter = limiter or trio.CapacityLimiter(8)
        self.nowait_hits = 0
        # cachestat(2) arguments, reused: cached() runs on the event loop only.
        self._cs_range = _CachestatRange()
        self._cs = _Cachestat()
        self._cs_args = (ctypes.addressof(self._cs_range), ctypes.addressof(self._cs))
        self._cachestat = True  # until the kernel says it has no cachestat(2)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        size: int,
        *,
        block_size: int = 512,
        thin: bool = True,
        limiter: trio.CapacityLimiter | None = None,
    ) -> FileBackend:
        """Create the backing file (``size`` rounded down to whole blocks)."""
        size -= size % block_size
        if size <= 0:
            raise ValueError("LUN size must hold at least one block")
        fd = os.open(os.fspath(path), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            if thin:
                os.ftruncate(fd, size)
            else:
                os.posix_fallocate(fd, 0, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        # Make the new directory entry durable too.
        dfd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return cls(path, block_size=block_size, thin=thin, limiter=limiter)

    def grow(self, size: int) -> None:
        """Extend the unit to ``size`` bytes (whole blocks); shrinking is refused."""
        size -= size % self.block_size
        if size < self.num_blocks * self.block_size:
            raise ValueError("a LUN can only grow")
        if self.thin:
            os.ftruncate(self._fd, size)
        else:
            os.posix_fallocate(self._fd, 0, size)
        os.fsync(self._fd)
        self.num_blocks = size // self.block_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def fileno(self) -> int:
        return self._fd

    async def _run(self, fn: object, *args: object) -> object:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)  # type: ignore[arg-type]

    # -- data path -----------------------------------------------------------------

    def _read_sync(self, offset: int, length: int) -> bytearray:
        buf = bytearray(length)
        view = memoryview(buf)
        done = 0
        while done < length:
            n = os.preadv(self._fd, [view[done:]], offset + done)
            if n == 0:  # beyond EOF: reads as zeros
                break
            done += n
        return buf

    def read_now(self, lba: int, blocks: int) -> bytearray | None:
        """Page-cache hits, served on the event loop: ``preadv(RWF_NOWAIT)`` never
        blocks, and a worker thread costs ~100 us a call, more than a 4 KiB cached
        read.  None when any of the range would have to come from the disk."""
        length = blocks * self.block_size
        if not _RWF_NOWAIT or length > INLINE_READ_MAX:
            return None
        buf = bytearray(length)
        return buf if self.read_now_into(lba, memoryview(buf)) else None

    def read_now_into(self, lba: int, dest: memoryview) -> bool:
        """:meth:`read_now` into the caller's buffer (a transport's send buffer)."""
        length = len(dest)
        if not _RWF_NOWAIT or length > INLINE_READ_MAX:
            return False
        try:
            n = os.preadv(self._fd, (dest,), lba * self.block_size, _RWF_NOWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            return False
        if n != length:
            return False
        self.nowait_hits += 1
        return True

    def cached(self, lba: int, blocks: int) -> bool:
        """cachestat(2) over the range: True when every page of it is in the page cache,
        so that reading it (or ``sendfile`` from it) does not wait for the disk, short of
        the pages being evicted in between.  False without cachestat (before Linux 6.5)."""
        if not self._cachestat or self._fd < 0 or blocks <= 0:
            return False
        bs = self.block_size
        offset = lba * bs
        end = offset + blocks * bs
        first = offset // _PAGE
        pages = (end + _PAGE - 1) // _PAGE - first
        rng = self._cs_range
        rng.off = first * _PAGE
        rng.len = pages * _PAGE
        if _syscall(_SYS_CACHESTAT, self._fd, *self._cs_args, 0) != 0:
            if ctypes.get_errno() in (errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP):
                self._cachestat = False
            return False
        return bool(self._cs.nr_cache >= pages)

    async def read(self, lba: int, blocks: int) -> bytearray:
        buf = self.read_now(lba, blocks)
        if buf is not None:
            return buf
        bs = self.block_size
        result = await self._run(self._read_sync, lba * bs, blocks * bs)
        assert isinstance(result, bytearray)
        return result

    def _write_sync(self, offset: int, data: Sequence[Buffer], fua: bool) -> None:
        views = [memoryview(b).cast("B") for b in data if len(b)]
        while views:
            n = os.pwritev(self._fd, views, offset)
            offset += n
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if views and n:
                views[0] = views[0][n:]
        if fua:
            os.fdatasync(self._fd)

    async def write(self, lba: int, data: Sequence[Buffer], *, fua: bool = False) -> None:
        await self._run(self._write_sync, lba * self.block_size, data, fua)

    async def flush(self) -> None:
        await self._run(os.fdatasync, self._fd)

    def _unmap_sync(self, extents: Sequence[tuple[int, int]]) -> None:
        bs = self.block_size
        for lba, n in extents:
            if self.thin:
                punch_hole(self._fd, lba * bs, n * bs)
            else:
                try:
                    _fallocate_mode(
                        self._fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, lba * bs, n * bs
                    )
                except OSError:
                    _write_zeroes(self._fd, lba * bs, n * bs)

    async def unmap(self, extents: Sequence[tuple[int, int]]) -> None:
        await self._run(self._unmap_sync, extents)

    def _write_same_sync(self, lba: int, blocks: int, block: Buffer) -> None:
        bs = self.block_size
        # Build up to 1 MiB of repeated pattern once, then write it in a loop.
        per = max(1, min(blocks, (1 << 20) // bs))
        chunk = bytes(block) * per
        done = 0
        while done < blocks:
            n = min(per, blocks - done)
            self._write_sync((lba + done) * bs, [memoryview(chunk)[: n * bs]], False)
            done += n

    async def write_same(self, lba: int, blocks: int, block: Buffer) -> None:
        await self._run(self._write_same_sync, lba, blocks, block)

    def _lba_status_sync(self, lba: int) -> tuple[int, int]:
        """(blocks in the extent starting at ``lba``, MAPPED or DEALLOCATED)."""
        bs = self.block_size
        end = self.num_blocks * bs
        off = lba * bs
        try:
            data = os.lseek(self._fd, off, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            data = end  # no data after off: a hole to the end
        if data > off:
            # A hole from off to data: deallocated, whole blocks only.
            n = (min(data, end) - off) // bs
            if n > 0:
                return n, DEALLOCATED
            return 1, MAPPED
        hole = os.lseek(self._fd, off, os.SEEK_HOLE)
        n = -(-(min(hole, end) - off) // bs)
        return max(n, 1), MAPPED

    async def lba_status(self, lba: int) -> tuple[int, int]:
        if not self.thin:
            return self.num_blocks - lba, MAPPED
        result = await self._run(self._lba_status_sync, lba)
        assert isinstance(result, tuple)
        return result
