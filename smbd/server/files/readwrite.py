"""SMB2 READ ([MS-SMB2] 3.3.5.12) and WRITE (3.3.5.13).

READ fills one buffer per request (from the transport's buffer pool) with ``preadv`` in a
worker thread and replies as ``[fixed part, view of the data]``; WRITE hands the request's
own payload view to ``pwritev``. Nothing is copied on the way.
"""

from __future__ import annotations

from smbd.backend.posix import INLINE_READ_MAX
from smbd.server.files import torture
from smbd.server.files.common import (
    FILE_APPEND_DATA,
    FILE_EXECUTE,
    FILE_READ_DATA,
    FILE_WRITE_DATA,
    lookup,
    require,
    smb_errors,
)
from smbd.server.files.opens import Open
from smbd.server.files.pipes import handle_read as read_pipe
from smbd.server.files.pipes import handle_write as write_pipe
from smbd.server.files.state import FileServerState
from smbd.server.request import Request, Response, SMBError
from smbd.transport import smbdirect
from smbd.transport.buffers import POOL
from smbd.wire import create as wc
from smbd.wire import rw
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus

__all__ = ["PreRead", "handle_read", "handle_write", "preread", "write_now"]

_INT64_MAX = (1 << 63) - 1
# NTFS's largest file (16 TiB - 64 KiB); writes reaching past it are INVALID_PARAMETER
MAX_FILE_SIZE = 0xFFFFFFF0000
_FILE_ACTION_MODIFIED = 3
_NOTIFY_SIZE_WRITE = 0x8 | 0x10  # FILE_NOTIFY_CHANGE_SIZE | LAST_WRITE
# READ data is read this far into its buffer, where the response header and fixed part
# go in front of it (Response.frame); the data itself lands on a cache line
_READ_HEAD = rw.READ_DATA_OFFSET
_WRITE_THROUGH = int(rw.WriteFlags.WRITE_THROUGH)  # a plain int: no IntFlag built per WRITE
_OPLOCK_LEVEL_II = int(wc.OplockLevel.II)


def _live_open(files: FileServerState, file_id: tuple[int, int]) -> Open | None:
    """The open a not yet checked request's FileId names, if it is a live open of a file
    (for :func:`preread` and :func:`write_now`; the handlers' own lookup checks the rest)."""
    o = files.opens.get(file_id[1])
    if o is None or o.closed or o.is_dir or o.disconnected_at is not None:
        return None
    return o


class PreRead:
    """A READ's data read before the request is handled (see :func:`preread`)."""

    __slots__ = ("buf", "count", "file_id", "length", "offset", "taken")

    def __init__(
        self, file_id: tuple[int, int], offset: int, length: int, buf: memoryview, count: int
    ) -> None:
        self.file_id = file_id
        self.offset = offset
        self.length = length
        # a pool buffer, the data from _READ_HEAD on; whoever takes it hands it back
        self.buf: memoryview | None = buf
        self.count = count
        self.taken = False

    def take(self) -> tuple[memoryview, int]:
        """The data, handed over: this object forgets the buffer, so that once the response
        made from it is sent, nothing else refers to it and the pool can reuse it (a
        buffer still viewed from anywhere is not reused, see BufferPool.give)."""
        buf, self.buf = self.buf, None
        assert buf is not None, "PreRead taken twice"
        self.taken = True
        return buf, self.count


def preread(files: FileServerState, body: memoryview) -> PreRead | None:
    """The data of a READ (its request body, not yet checked in any way) when the page
    cache holds all of it: read now with RWF_NOWAIT into a pool buffer, so that the core
    can answer the request in the connection's receive loop instead of a task of its own.
    None when it does not (unknown open, an RDMA channel, a named pipe, a directory, data
    not cached): the request then goes the usual way.

    Nothing is decided here. The request still goes through every check (signature,
    session, tree, the open's session and tree, access, locks), and :func:`handle_read`
    uses the data only for the same open, offset and length; otherwise it is dropped."""
    try:
        r = rw.parse_read_request(body)
    except ParseError:
        return None
    if r.channel or not r.length or r.offset + r.length > _INT64_MAX:
        return None
    o = _live_open(files, r.file_id)
    if o is None:
        return None
    read_cached = getattr(o.file.runtime.backend, "read_cached", None)
    if read_cached is None or r.length > INLINE_READ_MAX:  # larger: a worker thread reads
        return None
    buf = POOL.take(_READ_HEAD + r.length, _READ_HEAD)
    try:
        n = read_cached(o.handle, buf[_READ_HEAD:], r.offset)
    except Exception:
        n = None  # its error, if any, is the handler's to report
    if n is None:
        POOL.give(buf)
        return None
    return PreRead(r.file_id, r.offset, r.length, buf, n)


async def handle_read(req: Request) -> Response:
    if req.tree is not None and req.tree.is_ipc:
        return await read_pipe(req)
    r = rw.parse_read_request(req.body)
    smbdirect.note_channel(req, r.channel, r.channel_info)
    o = lookup(req, r.file_id)
    if o.is_dir:
        raise SMBError(NTStatus.INVALID_DEVICE_REQUEST, "READ on a directory")
    require(o, FILE_READ_DATA | FILE_EXECUTE)
    if r.length > req.connection.max_read_size:
        raise SMBError(NTStatus.INVALID_PARAMETER, f"READ of {r.length} bytes")
    rdma = await smbdirect.read_channel(req, r)  # RDMA channel: the data goes by RDMA Write
    if r.offset + r.length > _INT64_MAX:
        raise SMBError(NTStatus.INVALID_PARAMETER, "READ beyond the largest offset")
    files: FileServerState = req.server.files
    if files.locks is not None and r.length and files.locks.check_io(o, r.offset, r.length, False):
        raise SMBError(NTStatus.FILE_LOCK_CONFLICT)
    rt = o.file.runtime
    rt.ops += 1
    pre = req.preread
    if (
        isinstance(pre, PreRead)
        and pre.file_id == r.file_id
        and pre.offset == r.offset
        and pre.length == r.length
        and rdma is None
    ):
        buf, n = pre.take()  # read moments ago, from the cache (see preread)
    else:
        # the processor hands it back once the response is sent
        buf = POOL.take(_READ_HEAD + r.length, _READ_HEAD)
        with smb_errors():
            n = await rt.backend.read_into(o.handle, buf[_READ_HEAD:], r.offset)
    if (n == 0 and r.length) or n < r.minimum_count:
        raise SMBError(NTStatus.END_OF_FILE)
    rt.bytes_read += n
    o.position = r.offset + n
    data = buf[_READ_HEAD : _READ_HEAD + n]
    if rdma is not None:
        return Response(await rdma.respond(data))
    body = torture.read_response(req.connection, rw.pack_read_response(data))
    return Response(body, frame=buf[: _READ_HEAD + n] if n else None)


def write_now(files: FileServerState, body: memoryview) -> bool:
    """Whether a WRITE (its request body, not yet checked in any way) would be written on
    the event loop (the backend's ``writes_inline``: small enough, nothing queued for the
    file, the kernel not throttling writers), so that the core can process it in the
    connection's receive loop instead of a task of its own. Nothing is decided here:
    the request still goes through every check in :func:`handle_write`."""
    try:
        w = rw.parse_write_request(body)
    except ParseError:
        return False
    if w.channel or w.flags & _WRITE_THROUGH or not len(w.data):
        return False
    o = _live_open(files, w.file_id)
    if o is None or o.write_through:
        return False
    if len(o.file.opens) > 1 or o.oplock_level == _OPLOCK_LEVEL_II:
        # the write may break other holders' read caching (break_read_caching), and a
        # break is a send to another client, which may be slow to read: a task waits
        return False
    writes_inline = getattr(o.file.runtime.backend, "writes_inline", None)
    return writes_inline is not None and bool(writes_inline(o.handle, len(w.data)))


async def handle_write(req: Request) -> Response:
    if req.tree is not None and req.tree.is_ipc:
        return await write_pipe(req)
    w = rw.parse_write_request(req.body)
    smbdirect.note_channel(req, w.channel, w.channel_info)
    o = lookup(req, w.file_id)
    if o.is_dir:
        raise SMBError(NTStatus.INVALID_DEVICE_REQUEST, "WRITE on a directory")
    require(o, FILE_WRITE_DATA | FILE_APPEND_DATA)
    w = await smbdirect.pull_write(req, w)  # RDMA channel: the data comes by RDMA Read
    if len(w.data) > req.connection.max_write_size:
        raise SMBError(NTStatus.INVALID_PARAMETER, f"WRITE of {len(w.data)} bytes")
    rt = o.file.runtime
    offset = w.offset
    files: FileServerState = req.server.files
    if offset > _INT64_MAX or (len(w.data) and offset >= MAX_FILE_SIZE):
        raise SMBError(NTStatus.INVALID_PARAMETER, "WRITE beyond the largest file")
    if len(w.data) and offset + len(w.data) >= MAX_FILE_SIZE:
        raise SMBError(NTStatus.DISK_FULL, "WRITE would pass the largest file size")
    if not o.granted_access & FILE_WRITE_DATA:
        # append-only opens may only write at the end of the file
        with smb_errors():
            eof = (await rt.backend.stat(o.handle)).end_of_file
        if offset < eof:
            raise SMBError(NTStatus.ACCESS_DENIED, "append-only open writing inside the file")
    if (
        files.locks is not None
        and len(w.data)
        and files.locks.check_io(o, offset, len(w.data), True)
    ):
        raise SMBError(NTStatus.FILE_LOCK_CONFLICT)
    if files.oplocks is not None:
        await files.oplocks.break_read_caching(req, o)
    sync = bool(w.flags & _WRITE_THROUGH) or o.write_through
    rt.ops += 1
    n = 0
    if len(w.data) or sync:
        with smb_errors():
            n = await rt.backend.write(o.handle, w.data, offset, sync=sync)
    rt.bytes_written += n
    o.position = offset + n
    if files.notify is not None:
        files.notify.changed(rt.name, o.file.components, _FILE_ACTION_MODIFIED, _NOTIFY_SIZE_WRITE)
    return Response([rw.pack_write_response(n)])
