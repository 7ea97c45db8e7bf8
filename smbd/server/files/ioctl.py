"""SMB2 IOCTL for files ([MS-SMB2] 3.3.5.15; [MS-FSA] 2.1.5.10 FSCTLs).

The core answers FSCTL_VALIDATE_NEGOTIATE_INFO and FSCTL_QUERY_NETWORK_INTERFACE_INFO and
hands every other control code here. Dispatch is a table by control code; a code missing
from it gets INVALID_DEVICE_REQUEST, as Windows answers FSCTLs a file system lacks.

Served: SET_SPARSE, SET_ZERO_DATA, QUERY_ALLOCATED_RANGES, FILE_LEVEL_TRIM,
SRV_REQUEST_RESUME_KEY, SRV_COPYCHUNK and SRV_COPYCHUNK_WRITE (done inside the server with
the backend's copy_file_range; limits of 3.3.5.15.6), GET/SET_COMPRESSION (none),
CREATE_OR_GET_OBJECT_ID / GET_OBJECT_ID, QUERY_FILE_REGIONS, LMR_REQUEST_RESILIENCY.
Refused as Samba does: DFS referrals (NOT_FOUND: no DFS), reparse points, offload
read/write and duplicate extents (clients fall back to copy or read/write).
smbtorture's test-only FSCTLs (files.torture) are looked up only when the server config
sets ``smbtorture_hooks``; otherwise they are unknown codes like any other.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from smbd.backend import BackendError, FileHandle, PosixShare
from smbd.server.files.common import (
    FILE_APPEND_DATA,
    FILE_EXECUTE,
    FILE_READ_DATA,
    FILE_WRITE_ATTRIBUTES,
    FILE_WRITE_DATA,
    files_of,
    lookup,
    require,
    session_tree,
    smb_errors,
)
from smbd.server.files.pipes import transceive as pipe_transceive
from smbd.server.files.torture import TORTURE_FSCTL_HANDLERS
from smbd.server.request import Buffer, Handler, Request, Response, SMBError
from smbd.wire import fsctl as wf
from smbd.wire import ioctl as wio
from smbd.wire.constants import Command
from smbd.wire.fsctl import FsctlCode
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.files.opens import Open

__all__ = ["FSCTL_HANDLERS", "HANDLERS", "handle_ioctl"]

log = logging.getLogger("smbd.files.ioctl")

MAX_RESILIENCY_TIMEOUT_MS: Final = 300_000
_OUTPUT_COUNT: Final = struct.Struct("<I")
_OUTPUT_COUNT_AT: Final = 36  # [MS-SMB2] 2.2.32 OutputCount in the response's fixed part
_NOTIFY_SIZE_WRITE: Final = 0x8 | 0x10
_FILE_ACTION_MODIFIED: Final = 3

FsctlHandler = Callable[[Request, wio.IoctlRequest], Awaitable[Response]]


def _reply(r: wio.IoctlRequest, output: Buffer = b"", status: int = NTStatus.SUCCESS) -> Response:
    return Response(wio.pack_ioctl_response(r.ctl_code, r.file_id, output), status)


def _file_open(req: Request, r: wio.IoctlRequest, *, allow_dir: bool = False) -> Open:
    o = lookup(req, r.file_id)
    if o.is_dir and not allow_dir:
        raise SMBError(NTStatus.INVALID_PARAMETER, "FSCTL on a directory")
    return o


def _modified(req: Request, o: Open) -> None:
    files = files_of(req)
    if files.notify is not None:
        files.notify.changed(
            o.file.runtime.name, o.file.components, _FILE_ACTION_MODIFIED, _NOTIFY_SIZE_WRITE
        )


# -- sparse files ---------------------------------------------------------------------------


async def _set_sparse(req: Request, r: wio.IoctlRequest) -> Response:
    o = _file_open(req, r)
    require(o, FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES | FILE_APPEND_DATA)
    sparse = wf.parse_set_sparse(r.input)
    rt = o.file.runtime
    rt.ops += 1
    with smb_errors():
        await rt.backend.run(rt.backend.set_sparse_sync, o.handle, sparse)
    return _reply(r)


async def _set_zero_data(req: Request, r: wio.IoctlRequest) -> Response:
    o = _file_open(req, r)
    z = wf.parse_zero_data(r.input)
    require(o, FILE_WRITE_DATA)
    files = files_of(req)
    length = z.beyond_final_zero - z.file_offset
    if files.locks is not None and length and files.locks.check_io(o, z.file_offset, length, True):
        raise SMBError(NTStatus.FILE_LOCK_CONFLICT)
    rt = o.file.runtime
    rt.ops += 1
    with smb_errors():
        await rt.backend.run(
            rt.backend.zero_range_sync, o.handle, z.file_offset, z.beyond_final_zero
        )
    _modified(req, o)
    return _reply(r)


def _allocated_ranges(
    backend: PosixShare, handle: FileHandle, offset: int, length: int, max_ranges: int
) -> tuple[list[tuple[int, int]], bool]:
    """[MS-FSA] 2.1.5.10.22: a non-sparse file is reported allocated over the whole range
    (clipped to the end of file); a sparse one by SEEK_DATA/SEEK_HOLE."""
    if not backend.is_sparse_sync(handle):
        eof = backend.stat_sync(handle).end_of_file
        end = min(offset + length, eof)
        if end <= offset:
            return [], False
        return ([(offset, end - offset)], False) if max_ranges else ([], True)
    return backend.allocated_ranges_sync(handle, offset, length, max_ranges)


async def _query_allocated_ranges(req: Request, r: wio.IoctlRequest) -> Response:
    o = _file_open(req, r)
    q = wf.parse_allocated_range(r.input)
    require(o, FILE_READ_DATA)
    rt = o.file.runtime
    rt.ops += 1
    max_ranges = r.max_output_response // 16
    with smb_errors():
        ranges, more = await rt.backend.run(
            _allocated_ranges, rt.backend, o.handle, q.file_offset, q.length, max_ranges
        )
    if more and not ranges:
        raise SMBError(NTStatus.BUFFER_TOO_SMALL, "MaxOutputResponse below one range")
    out = wf.pack_allocated_ranges([wf.AllocatedRange(a, n) for a, n in ranges])
    return _reply(r, out, NTStatus.BUFFER_OVERFLOW if more else NTStatus.SUCCESS)


async def _file_level_trim(req: Request, r: wio.IoctlRequest) -> Response:
    o = _file_open(req, r)
    t = wf.parse_file_level_trim(r.input)
    require(o, FILE_WRITE_DATA)
    if r.max_output_response < 4:
        raise SMBError(NTStatus.BUFFER_TOO_SMALL)
    rt = o.file.runtime
    rt.ops += 1
    done = 0
    for offset, length in t.ranges:
        if offset + length > 1 << 63:
            break
        with smb_errors():
            await rt.backend.run(rt.backend.zero_range_sync, o.handle, offset, offset + length)
        done += 1
    if done:
        _modified(req, o)
    return _reply(r, wf.pack_file_level_trim_output(done))


# -- server-side copy --------------------------------------------------------------------------


def _resume_key(o: Open, tag: bytes) -> bytes:
    return o.persistent_id.to_bytes(8, "little") + o.volatile_id.to_bytes(8, "little") + tag


async def _request_resume_key(req: Request, r: wio.IoctlRequest) -> Response:
    o = _file_open(req, r)
    if r.max_output_response < 32:
        raise SMBError(NTStatus.INVALID_PARAMETER, "MaxOutputResponse below a resume key")
    tag = o.extra.get("resume_tag")
    if not isinstance(tag, bytes):
        tag = o.extra["resume_tag"] = req.server.rng(8)
    return _reply(r, wf.pack_resume_key_response(_resume_key(o, tag)))


def _source_of(req: Request, key: bytes) -> Open:
    """The open a resume key names: live, of this session ([MS-SMB2] 3.3.5.15.6)."""
    files = files_of(req)
    persistent = int.from_bytes(key[0:8], "little")
    volatile = int.from_bytes(key[8:16], "little")
    o = files.opens.get(volatile)
    if (
        o is None
        or o.closed
        or o.persistent_id != persistent
        or o.extra.get("resume_tag") != key[16:24]
        or req.session is None
        or o.session_id != req.session.session_id
    ):
        raise SMBError(NTStatus.OBJECT_NAME_NOT_FOUND, "unknown resume key")
    return o


def _copy_chunk(backend: PosixShare, src: FileHandle, dst: FileHandle, chunk: wf.Chunk) -> int:
    """Copy one chunk; a chunk reaching past the source's end is INVALID_VIEW_SIZE."""
    if chunk.source_offset + chunk.length > backend.stat_sync(src).end_of_file:
        raise BackendError(NTStatus.VIEW_SIZE, "copy chunk beyond the end of the source")
    return backend.copy_range_sync(src, dst, chunk.source_offset, chunk.target_offset, chunk.length)


async def _copychunk(req: Request, r: wio.IoctlRequest) -> Response:
    dst = _file_open(req, r)
    if r.max_output_response < 12:
        raise SMBError(NTStatus.INVALID_PARAMETER, "MaxOutputResponse below the copy response")
    cc = wf.parse_copychunk_request(r.input)
    if not wf.copychunk_within_limits(cc):
        return _reply(r, wf.pack_copychunk_limits(), NTStatus.INVALID_PARAMETER)
    need = FILE_WRITE_DATA
    if r.ctl_code == FsctlCode.FSCTL_SRV_COPYCHUNK:
        need |= FILE_READ_DATA  # COPYCHUNK (not _WRITE) also needs read on the target
    if dst.granted_access & need != need:
        raise SMBError(NTStatus.ACCESS_DENIED, "copy target lacks access")
    src = _source_of(req, cc.source_key)
    if src.is_dir:
        raise SMBError(NTStatus.INVALID_PARAMETER, "copy source is a directory")
    if not src.granted_access & (FILE_READ_DATA | FILE_EXECUTE):
        raise SMBError(NTStatus.ACCESS_DENIED, "copy source lacks read access")
    files = files_of(req)
    rt = dst.file.runtime
    rt.ops += 1
    written = total = 0
    status: int = NTStatus.SUCCESS
    # Chunks are copied in order; a failing one stops the copy and the response still
    # says how much was done ([MS-SMB2] 3.3.5.15.6).
    for c in cc.chunks:
        if files.locks is not None and (
            files.locks.check_io(src, c.source_offset, c.length, False)
            or files.locks.check_io(dst, c.target_offset, c.length, True)
        ):
            status = NTStatus.FILE_LOCK_CONFLICT
            break
        try:
            total += await rt.backend.run(_copy_chunk, rt.backend, src.handle, dst.handle, c)
        except BackendError as exc:
            status = exc.status
            break
        written += 1
    if total:
        rt.bytes_written += total
        src.file.runtime.bytes_read += total
        _modified(req, dst)
    out = wf.pack_copychunk_response(wf.CopyChunkResponse(written, 0, total))
    return _reply(r, out, status)


# -- small ones ---------------------------------------------------------------------------------


async def _get_compression(req: Request, r: wio.IoctlRequest) -> Response:
    _file_open(req, r, allow_dir=True)
    if r.max_output_response < 2:
        raise SMBError(NTStatus.BUFFER_TOO_SMALL)
    return _reply(r, wf.pack_get_compression())


async def _set_compression(req: Request, r: wio.IoctlRequest) -> Response:
    o = _file_open(req, r, allow_dir=True)
    state = wf.parse_set_compression(r.input)
    require(o, FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES)
    if state != wf.COMPRESSION_FORMAT_NONE:
        raise SMBError(NTStatus.NOT_SUPPORTED, "compression is not supported")
    return _reply(r)


async def _object_id(req: Request, r: wio.IoctlRequest) -> Response:
    o = _file_open(req, r, allow_dir=True)
    if r.max_output_response < 64:
        raise SMBError(NTStatus.BUFFER_TOO_SMALL)
    oid = o.handle.ino.to_bytes(8, "little") + (o.handle.dev & (2**64 - 1)).to_bytes(8, "little")
    return _reply(r, wf.pack_object_id_buffer(oid))


async def _query_file_regions(req: Request, r: wio.IoctlRequest) -> Response:
    o = _file_open(req, r)
    q = wf.parse_query_file_regions(r.input)
    require(o, FILE_READ_DATA)
    rt = o.file.runtime
    with smb_errors():
        eof = (await rt.backend.stat(o.handle)).end_of_file
    offset, length, usage = q if q is not None else (0, eof, 0)
    usage = usage or wf.FILE_REGION_USAGE_VALID_CACHED_DATA
    end = min(offset + length, eof)
    regions = [(offset, end - offset, usage)] if end > offset else []
    out = wf.pack_query_file_regions_output(regions)
    if len(out) > r.max_output_response:
        raise SMBError(NTStatus.BUFFER_TOO_SMALL)
    return _reply(r, out)


async def _request_resiliency(req: Request, r: wio.IoctlRequest) -> Response:
    o = _file_open(req, r, allow_dir=True)
    timeout = wf.parse_resiliency_request(r.input)
    if timeout > MAX_RESILIENCY_TIMEOUT_MS:
        raise SMBError(NTStatus.INVALID_PARAMETER, "resiliency timeout too long")
    o.extra["resilient"] = True
    o.extra["resiliency_timeout_ms"] = timeout
    return _reply(r)


def _refuse(status: int) -> FsctlHandler:
    async def refuse(req: Request, r: wio.IoctlRequest) -> Response:
        raise SMBError(status, f"FSCTL 0x{r.ctl_code:08x}")

    return refuse


FSCTL_HANDLERS: dict[int, FsctlHandler] = {
    FsctlCode.FSCTL_SET_SPARSE: _set_sparse,
    FsctlCode.FSCTL_SET_ZERO_DATA: _set_zero_data,
    FsctlCode.FSCTL_QUERY_ALLOCATED_RANGES: _query_allocated_ranges,
    FsctlCode.FSCTL_FILE_LEVEL_TRIM: _file_level_trim,
    FsctlCode.FSCTL_SRV_REQUEST_RESUME_KEY: _request_resume_key,
    FsctlCode.FSCTL_SRV_COPYCHUNK: _copychunk,
    FsctlCode.FSCTL_SRV_COPYCHUNK_WRITE: _copychunk,
    FsctlCode.FSCTL_GET_COMPRESSION: _get_compression,
    FsctlCode.FSCTL_SET_COMPRESSION: _set_compression,
    FsctlCode.FSCTL_CREATE_OR_GET_OBJECT_ID: _object_id,
    FsctlCode.FSCTL_GET_OBJECT_ID: _object_id,
    FsctlCode.FSCTL_QUERY_FILE_REGIONS: _query_file_regions,
    FsctlCode.FSCTL_LMR_REQUEST_RESILIENCY: _request_resiliency,
    FsctlCode.FSCTL_DFS_GET_REFERRALS: _refuse(NTStatus.NOT_FOUND),
    FsctlCode.FSCTL_DFS_GET_REFERRALS_EX: _refuse(NTStatus.NOT_FOUND),
    FsctlCode.FSCTL_GET_REPARSE_POINT: _refuse(NTStatus.NOT_A_REPARSE_POINT),
    FsctlCode.FSCTL_SET_REPARSE_POINT: _refuse(NTStatus.NOT_SUPPORTED),
    FsctlCode.FSCTL_DELETE_REPARSE_POINT: _refuse(NTStatus.NOT_A_REPARSE_POINT),
    FsctlCode.FSCTL_OFFLOAD_READ: _refuse(NTStatus.NOT_SUPPORTED),
    FsctlCode.FSCTL_OFFLOAD_WRITE: _refuse(NTStatus.NOT_SUPPORTED),
    FsctlCode.FSCTL_DUPLICATE_EXTENTS_TO_FILE: _refuse(NTStatus.INVALID_DEVICE_REQUEST),
    FsctlCode.FSCTL_DUPLICATE_EXTENTS_TO_FILE_EX: _refuse(NTStatus.INVALID_DEVICE_REQUEST),
    FsctlCode.FSCTL_PIPE_TRANSCEIVE: pipe_transceive,
    FsctlCode.FSCTL_PIPE_PEEK: _refuse(NTStatus.NOT_SUPPORTED),
    FsctlCode.FSCTL_PIPE_WAIT: _refuse(NTStatus.NOT_SUPPORTED),
}


async def handle_ioctl(req: Request) -> Response:
    """[MS-SMB2] 3.3.5.15: the checks common to every FSCTL, then the table."""
    session_tree(req)
    r = wio.parse_ioctl_request(req.body)
    if r.flags != wio.SMB2_0_IOCTL_IS_FSCTL:
        raise SMBError(NTStatus.NOT_SUPPORTED, "IOCTL that is not an FSCTL")
    limit = req.connection.max_transact_size
    if (
        len(r.input) > limit
        or r.max_output_response > limit
        or r.max_input_response > limit
        or len(r.output) > limit
    ):
        raise SMBError(NTStatus.INVALID_PARAMETER, "IOCTL beyond MaxTransactSize")
    handler = FSCTL_HANDLERS.get(r.ctl_code)
    if handler is None and files_of(req).config.smbtorture_hooks:
        handler = TORTURE_FSCTL_HANDLERS.get(r.ctl_code)
    if handler is None:
        log.debug("unsupported FSCTL 0x%08x", r.ctl_code)
        raise SMBError(NTStatus.INVALID_DEVICE_REQUEST, f"FSCTL 0x{r.ctl_code:08x}")
    resp = await handler(req, r)
    (out_len,) = _OUTPUT_COUNT.unpack_from(resp.body[0], _OUTPUT_COUNT_AT)
    if out_len > r.max_output_response:
        raise SMBError(NTStatus.BUFFER_TOO_SMALL, "output beyond MaxOutputResponse")
    return resp


HANDLERS: dict[Command, Handler] = {Command.IOCTL: handle_ioctl}
