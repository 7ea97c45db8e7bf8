"""SMB2 QUERY_INFO ([MS-SMB2] 3.3.5.20) and SET_INFO (3.3.5.21): file, filesystem and
security information.

Queries build the class with :mod:`smbd.wire.fscc` and fit it to OutputBufferLength: a
buffer smaller than the class's fixed part is INFO_LENGTH_MISMATCH; variable-length classes
that do not fit are cut and answered with BUFFER_OVERFLOW (3.3.5.20.1).
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections import deque
from typing import Final

from smbd.backend import (
    BackendError,
    Components,
    Disposition,
    FileAttributes,
    FileStat,
    PosixShare,
    join_components,
    split_path,
)
from smbd.backend.paths import STREAMS_DIR
from smbd.server.files import eas, pipes, security
from smbd.server.files.common import (
    DELETE,
    FILE_APPEND_DATA,
    FILE_READ_ATTRIBUTES,
    FILE_READ_EA,
    FILE_WRITE_ATTRIBUTES,
    FILE_WRITE_DATA,
    FILE_WRITE_EA,
    READ_CONTROL,
    WRITE_DAC,
    WRITE_OWNER,
    files_of,
    lookup,
    require,
    smb_errors,
)
from smbd.server.files.opens import Open
from smbd.server.files.state import FileServerState
from smbd.server.request import Request, Response, SMBError
from smbd.wire import fscc
from smbd.wire import info as wi
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus

__all__ = ["handle_query_info", "handle_set_info"]

log = logging.getLogger("smbd.files")

C = fscc.FileInfoClass
F = fscc.FsInfoClass

FS_NAME = "NTFS"  # what Windows clients expect to see to enable sparse/ODX features
FS_ATTRIBUTES = (
    fscc.FsAttributes.CASE_SENSITIVE_SEARCH
    | fscc.FsAttributes.CASE_PRESERVED_NAMES
    | fscc.FsAttributes.UNICODE_ON_DISK
    | fscc.FsAttributes.PERSISTENT_ACLS
    | fscc.FsAttributes.SUPPORTS_SPARSE_FILES
)
SECTOR = 512
_FILETIME_KEEP = 0x8000_0000_0000_0000  # -1 / -2 ("stop/resume updating") as unsigned

# fixed part of each class: smaller output buffers are INFO_LENGTH_MISMATCH
_FIXED = {
    C.FileBasicInformation: 40,
    C.FileStandardInformation: 24,
    C.FileInternalInformation: 8,
    C.FileEaInformation: 4,
    C.FileAccessInformation: 4,
    C.FileNameInformation: 4,
    C.FilePositionInformation: 8,
    C.FileModeInformation: 4,
    C.FileAlignmentInformation: 4,
    C.FileAllInformation: 104,
    C.FileAlternateNameInformation: 8,
    C.FileStreamInformation: 32,
    C.FileCompressionInformation: 16,
    C.FileNetworkOpenInformation: 56,
    C.FileAttributeTagInformation: 8,
    C.FileIdInformation: 24,
    C.FileNormalizedNameInformation: 4,
}
# the minimum sizes Windows enforces (smbtorture smb2.getinfo.*_buffercheck)
_FS_FIXED = {
    F.FileFsVolumeInformation: 24,
    F.FileFsSizeInformation: 24,
    F.FileFsDeviceInformation: 8,
    F.FileFsAttributeInformation: 16,
    F.FileFsControlInformation: 48,
    F.FileFsFullSizeInformation: 32,
    F.FileFsSectorSizeInformation: 28,
    F.FileFsObjectIdInformation: 64,
}


_SHORT_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789$%'-_@~`!(){}^#&")


def short_name(name: str) -> str:
    """An 8.3 alternate name ([MS-FSCC] 2.1.5.2.1): the name itself when it already is
    one, else a stable mangled form (first letters, ``~`` and a hash, extension kept)."""
    if not name:
        return ""
    stem, _, ext = name.rpartition(".") if "." in name[1:] else (name, "", "")
    upper = name.upper()
    if (
        len(stem) <= 8
        and len(ext) <= 3
        and stem
        and all(c in _SHORT_OK for c in (stem + ext).upper())
    ):
        return upper
    clean = "".join(c for c in stem.upper() if c in _SHORT_OK)[:4] or "F"
    h = zlib.crc32(name.encode("utf-8", "surrogatepass"))
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    tag = digits[h % 36] + digits[(h // 36) % 36]
    ext3 = "".join(c for c in ext.upper() if c in _SHORT_OK)[:3]
    return f"{clean}~{tag}" + (f".{ext3}" if ext3 else "")


def _fit(data: bytes, fixed: int, limit: int) -> Response:
    if limit < fixed:
        raise SMBError(NTStatus.INFO_LENGTH_MISMATCH, f"{limit} < {fixed}")
    if len(data) > limit:
        return Response(wi.pack_query_info_response(data[:limit]), NTStatus.BUFFER_OVERFLOW)
    return Response(wi.pack_query_info_response(data))


# at most this many directory entries are looked at to find the file of a named stream
# whose file has no open (once per open of the stream)
STREAM_BASE_SEARCH_LIMIT: Final = 20_000


def _find_inode_sync(backend: PosixShare, ino: int, limit: int) -> Components | None:
    """The components of the file with inode ``ino``, searched breadth-first from the share
    root over at most ``limit`` directory entries; None when not found within them."""
    queue: deque[Components] = deque([()])
    seen = 0
    while queue:
        comps = queue.popleft()
        try:
            r = backend.open_sync(comps, Disposition.OPEN, 0, want_write=False)
        except BackendError:
            continue  # vanished meanwhile
        try:
            if not r.handle.is_dir:
                continue
            for name in backend.list_names_sync(r.handle):
                seen += 1
                if seen > limit:
                    return None
                entry = backend.stat_entry_sync(r.handle, name)
                if entry is None:
                    continue
                if entry.file_id == ino:
                    return (*comps, name)
                if entry.is_dir:
                    queue.append((*comps, name))
        finally:
            backend.close_sync(r.handle)
    return None


async def _client_path(files: FileServerState, o: Open) -> str:
    """The name the client knows the open by, from the share root without a leading
    backslash: ``dir\\file``, or ``dir\\file:stream`` for a named stream (kept inside the
    share as ``.vmstor-streams\\<inode>\\<stream>``, a name clients never see). The file a
    stream belongs to is found by its inode among the open files, else by a bounded search
    of the share (remembered for the open); not found, the stream is named alone
    (``:stream``)."""
    comps = o.file.components
    if len(comps) != 3 or comps[0] != STREAMS_DIR:
        return o.file.path
    ino = int(comps[1])
    base = files.files.get((o.handle.dev, ino))
    if base is not None and base.runtime is o.file.runtime:
        return f"{base.path}:{comps[2]}"
    found = o.extra.get("stream_base")
    if not isinstance(found, tuple):
        rt = o.file.runtime
        with smb_errors():
            found = await rt.backend.run(
                _find_inode_sync, rt.backend, ino, STREAM_BASE_SEARCH_LIMIT
            )
        if found is None:
            log.info("the file of stream %s is not found", o.file.path)
            return f":{comps[2]}"
        o.extra["stream_base"] = found
    return f"{join_components(found)}:{comps[2]}"


def _share_path(path: str) -> str:
    return "\\" + path


def _basic(st: FileStat) -> fscc.BasicInfo:
    return fscc.BasicInfo(
        st.creation_time, st.last_access_time, st.last_write_time, st.change_time, st.attributes
    )


def _standard(o: Open, st: FileStat) -> fscc.StandardInfo:
    # a delete-pending name no longer counts as a link ([MS-FSA] 2.1.5.11.27)
    pending = o.file.delete_pending
    nlink = max(0, st.nlink - 1) if pending and not st.is_dir else st.nlink
    return fscc.StandardInfo(st.allocation_size, st.end_of_file, nlink, pending, st.is_dir)


def _mode(o: Open) -> int:
    return o.mode | (o.create_options & 0x2) | (0x1000 if o.delete_on_close else 0)


def _file_class(o: Open, cls: int, st: FileStat, path: str, ea_size: int = 0) -> bytes:
    if cls == C.FileBasicInformation:
        return fscc.pack_basic_info(_basic(st))
    if cls == C.FileStandardInformation:
        return fscc.pack_standard_info(_standard(o, st))
    if cls == C.FileInternalInformation:
        return fscc.pack_internal_info(st.file_id)
    if cls == C.FileEaInformation:
        return fscc.pack_ea_info(ea_size)
    if cls == C.FileAccessInformation:
        return fscc.pack_access_info(o.granted_access)
    if cls == C.FileNameInformation:
        return fscc.pack_name_info(_share_path(path))
    if cls == C.FileNormalizedNameInformation:
        return fscc.pack_name_info(path)
    if cls == C.FileAlternateNameInformation:
        return fscc.pack_name_info(short_name(path.partition(":")[0].rpartition("\\")[2]))
    if cls == C.FilePositionInformation:
        return fscc.pack_position_info(o.position)
    if cls == C.FileModeInformation:
        return fscc.pack_mode_info(_mode(o))
    if cls == C.FileAlignmentInformation:
        return fscc.pack_alignment_info(0)
    if cls == C.FileAllInformation:
        return fscc.pack_all_info(
            fscc.AllInfo(
                _basic(st),
                _standard(o, st),
                st.file_id,
                ea_size,
                o.granted_access,
                o.position,
                _mode(o),
                0,
                _share_path(path),
            )
        )
    if cls == C.FileCompressionInformation:
        return fscc.pack_compression_info(st.end_of_file)
    if cls == C.FileNetworkOpenInformation:
        return fscc.pack_network_open_info(
            fscc.NetworkOpenInfo(
                st.creation_time,
                st.last_access_time,
                st.last_write_time,
                st.change_time,
                st.allocation_size,
                st.end_of_file,
                st.attributes,
            )
        )
    if cls == C.FileAttributeTagInformation:
        return fscc.pack_attribute_tag_info(st.attributes)
    if cls == C.FileIdInformation:
        return fscc.pack_file_id_info(st.dev, st.file_id)
    raise AssertionError(cls)


async def _query_file(req: Request, o: Open, q: wi.QueryInfoRequest) -> Response:
    cls = q.info_class
    rt = o.file.runtime
    if cls == C.FileFullEaInformation:
        require(o, FILE_READ_EA)
        with smb_errors():
            data = await rt.backend.run(eas.ea_list_sync, rt.backend, o.handle)
        if not data:
            raise SMBError(NTStatus.NO_EAS_ON_FILE)
        if len(data) > q.output_buffer_length:
            raise SMBError(NTStatus.BUFFER_TOO_SMALL, "EA list does not fit")
        return Response(wi.pack_query_info_response(data))
    if cls not in _FIXED:
        try:
            C(cls)
        except ValueError:
            raise SMBError(NTStatus.INVALID_INFO_CLASS, f"file class {cls}") from None
        raise SMBError(NTStatus.NOT_SUPPORTED, f"file class {C(cls).name}")
    if cls in (
        C.FileBasicInformation,
        C.FileAllInformation,
        C.FileNetworkOpenInformation,
        C.FileAttributeTagInformation,
    ):
        require(o, FILE_READ_ATTRIBUTES)
    if cls == C.FileNormalizedNameInformation and req.connection.dialect < 0x0311:
        raise SMBError(NTStatus.NOT_SUPPORTED)
    with smb_errors():
        st = await rt.backend.stat(o.handle)
    if cls == C.FileStreamInformation:
        return await _query_streams(o, st, q.output_buffer_length)
    path = await _client_path(files_of(req), o)
    return _fit(_file_class(o, cls, st, path, st.ea_size), _FIXED[C(cls)], q.output_buffer_length)


async def _query_streams(o: Open, st: FileStat, limit: int) -> Response:
    """[MS-FSCC] 2.4.43: the unnamed data stream of a file, then its named streams."""
    rt = o.file.runtime
    with smb_errors():
        named = await rt.backend.run(rt.backend.list_streams_sync, o.handle)
    entries = []
    if not st.is_dir and o.file.components[:1] != (STREAMS_DIR,):
        entries.append(fscc.StreamEntry("::$DATA", st.end_of_file, st.allocation_size))
    entries.extend(fscc.StreamEntry(f":{n}:$DATA", size, alloc) for n, size, alloc in named)
    return _fit(fscc.pack_stream_info(entries), _FIXED[C.FileStreamInformation], limit)


async def _query_fs(req: Request, o: Open, q: wi.QueryInfoRequest) -> Response:
    cls = q.info_class
    if cls not in _FS_FIXED:
        try:
            F(cls)
        except ValueError:
            raise SMBError(NTStatus.INVALID_INFO_CLASS, f"fs class {cls}") from None
        raise SMBError(NTStatus.NOT_SUPPORTED, f"fs class {F(cls).name}")
    rt = o.file.runtime
    with smb_errors():
        fs = await rt.backend.run(rt.backend.fs_info_sync)
    spu = max(1, fs.bytes_per_unit // SECTOR)
    if cls == F.FileFsVolumeInformation:
        data = fscc.pack_fs_volume_info(0, fs.volume_serial, rt.name)
    elif cls == F.FileFsSizeInformation:
        data = fscc.pack_fs_size_info(fs.total_units, fs.free_units, spu, SECTOR)
    elif cls == F.FileFsDeviceInformation:
        data = fscc.pack_fs_device_info()
    elif cls == F.FileFsAttributeInformation:
        attrs = FS_ATTRIBUTES | (fscc.FsAttributes.READ_ONLY_VOLUME if rt.read_only else 0)
        data = fscc.pack_fs_attribute_info(attrs, fs.name_max, FS_NAME)
    elif cls == F.FileFsFullSizeInformation:
        data = fscc.pack_fs_full_size_info(
            fs.total_units, fs.free_units, fs.free_units, spu, SECTOR
        )
    elif cls == F.FileFsSectorSizeInformation:
        data = fscc.pack_fs_sector_size_info(SECTOR, 4096, 4096, 4096)
    elif cls == F.FileFsControlInformation:
        # [MS-FSCC] 2.5.2: no quotas; thresholds and limits "none" (-1)
        data = struct.pack("<QQQqqII", 0, 0, 0, -1, -1, 0, 0)
    else:  # FileFsObjectIdInformation
        data = fscc.pack_fs_object_id_info(fs.volume_serial.to_bytes(16, "little"))
    return _fit(data, _FS_FIXED[F(cls)], q.output_buffer_length)


async def _query_security(req: Request, o: Open, q: wi.QueryInfoRequest) -> Response:
    require(o, READ_CONTROL)
    rt = o.file.runtime
    with smb_errors():
        blob = await rt.backend.run(rt.backend.get_sd_sync, o.handle)
    sd = security.default_descriptor()
    if blob is not None:
        try:
            sd = security.parse(blob)
        except ParseError:
            log.warning("unreadable stored security descriptor of %s", o.file.path)
    # the SACL needs ACCESS_SYSTEM_SECURITY, which no open is granted: never returned
    out = security.pack(sd, q.additional_information & 0x7)
    if len(out) > q.output_buffer_length:
        raise SMBError(
            NTStatus.BUFFER_TOO_SMALL, "security descriptor", error_data=struct.pack("<I", len(out))
        )
    return Response(wi.pack_query_info_response(out))


async def handle_query_info(req: Request) -> Response:
    if req.tree is not None and req.tree.is_ipc:
        return await pipes.handle_query_info(req)
    q = wi.parse_query_info_request(req.body)
    o = lookup(req, q.file_id)
    if q.output_buffer_length > req.connection.max_transact_size:
        raise SMBError(NTStatus.INVALID_PARAMETER, "output buffer beyond MaxTransactSize")
    o.file.runtime.ops += 1
    if q.info_type == wi.InfoType.FILE:
        return await _query_file(req, o, q)
    if q.info_type == wi.InfoType.FILESYSTEM:
        return await _query_fs(req, o, q)
    if q.info_type == wi.InfoType.SECURITY:
        return await _query_security(req, o, q)
    if q.info_type == wi.InfoType.QUOTA:
        raise SMBError(NTStatus.NOT_SUPPORTED, "quotas")
    raise SMBError(NTStatus.INVALID_PARAMETER, f"info type {q.info_type}")


# -- SET_INFO --------------------------------------------------------------------------------

_FILE_ACTION_ADDED = 1
_FILE_ACTION_REMOVED = 2
_FILE_ACTION_MODIFIED = 3
_FILE_ACTION_RENAMED_OLD = 4
_FILE_ACTION_RENAMED_NEW = 5
_NOTIFY_ATTRIBUTES = 0x4 | 0x10 | 0x40  # ATTRIBUTES | LAST_WRITE | CREATION
_NOTIFY_SIZE = 0x8
_NOTIFY_FILE_NAME = 0x1


def _time(v: int) -> int:
    return 0 if v >= _FILETIME_KEEP else v


async def _set_basic(req: Request, o: Open, buf: memoryview) -> None:
    require(o, FILE_WRITE_ATTRIBUTES)
    b = fscc.parse_basic_info(buf)
    attrs = b.file_attributes
    if attrs & FileAttributes.DIRECTORY and not o.is_dir:
        raise SMBError(NTStatus.INVALID_PARAMETER, "DIRECTORY attribute on a file")
    if attrs & ~0x7FB7:
        raise SMBError(NTStatus.INVALID_PARAMETER, "attributes")
    if o.is_dir and attrs & FileAttributes.TEMPORARY:
        raise SMBError(NTStatus.INVALID_PARAMETER, "TEMPORARY attribute on a directory")
    rt = o.file.runtime
    with smb_errors():
        await rt.backend.run(
            lambda: rt.backend.set_basic_sync(
                o.handle,
                creation_time=_time(b.creation_time),
                last_access_time=_time(b.last_access_time),
                last_write_time=_time(b.last_write_time),
                change_time=_time(b.change_time),
                attributes=attrs & ~FileAttributes.DIRECTORY if attrs else 0,
            )
        )
    files = files_of(req)
    if files.notify is not None:
        files.notify.changed(rt.name, o.file.components, 3, _NOTIFY_ATTRIBUTES)


async def _set_rename(req: Request, o: Open, buf: memoryview, ex: bool) -> None:
    require(o, DELETE)
    r = fscc.parse_rename_info(buf, ex=ex)
    if o.file.components[:1] == (STREAMS_DIR,):
        # a named stream keeps its file; renaming one stream to another is not supported
        raise SMBError(NTStatus.NOT_SUPPORTED, "rename of a named stream")
    if r.root_directory:
        raise SMBError(NTStatus.INVALID_PARAMETER, "RootDirectory in an SMB2 rename")
    name = r.name[1:] if r.name.startswith("\\") else r.name
    try:
        target = split_path(name)
    except BackendError as exc:
        raise SMBError(exc.status, str(exc)) from exc
    if not target:
        raise SMBError(NTStatus.OBJECT_NAME_INVALID, "empty rename target")
    files = files_of(req)
    rt = o.file.runtime
    old = o.file.components
    if target == old:
        return
    if o.is_dir and files.has_open_below(rt, old):
        raise SMBError(NTStatus.ACCESS_DENIED, "directory has open files below it")
    if files.parent_open_for_delete(rt, old):
        raise SMBError(NTStatus.SHARING_VIOLATION, "the parent directory is open for DELETE")
    if files.oplocks is not None:
        await files.oplocks.break_handle_caching(req, o)
    with smb_errors():
        existing = await rt.backend.run(rt.backend.target_exists_sync, target)
    if existing is not None and existing != o.file.key:
        if not r.replace_if_exists:
            raise SMBError(NTStatus.OBJECT_NAME_COLLISION, name)
        if existing in files.files:
            raise SMBError(NTStatus.ACCESS_DENIED, f"{name} is open")
    with smb_errors():
        await rt.backend.run(rt.backend.rename_sync, o.handle, target, r.replace_if_exists)
    files.renamed(o.file, target)
    if files.notify is not None:
        filt = 0x2 if o.is_dir else 0x1
        if old[:-1] == target[:-1]:
            files.notify.changed(rt.name, old, _FILE_ACTION_RENAMED_OLD, filt)
            files.notify.changed(rt.name, target, _FILE_ACTION_RENAMED_NEW, filt)
        else:  # a move between directories is a removal here and an addition there
            files.notify.changed(rt.name, old, _FILE_ACTION_REMOVED, filt)
            files.notify.changed(rt.name, target, _FILE_ACTION_ADDED, filt)
        if not o.is_dir:
            # Windows also reports a renamed file as modified (attributes, creation) to
            # the watches that do not see file name changes (smb2.notify.mask-change; with
            # FILE_NAME in the filter only the name changes come, smb2.notify.rec)
            files.notify.changed(
                rt.name, target, _FILE_ACTION_MODIFIED, 0x4 | 0x40, unless=_NOTIFY_FILE_NAME
            )


async def _set_disposition(o: Open, delete: bool, *, on_close: bool, ignore_ro: bool) -> None:
    require(o, DELETE)
    rt = o.file.runtime
    if delete:
        with smb_errors():
            st = await rt.backend.stat(o.handle)
        if st.attributes & FileAttributes.READONLY and not st.is_dir and not ignore_ro:
            raise SMBError(NTStatus.CANNOT_DELETE, "read-only file")
        if not o.file.components:
            raise SMBError(NTStatus.CANNOT_DELETE, "share root")
        if st.is_dir:
            with smb_errors():
                empty = await rt.backend.run(rt.backend.is_empty_dir_sync, o.handle)
            if not empty:
                raise SMBError(NTStatus.DIRECTORY_NOT_EMPTY, o.file.path)
    if on_close:
        o.delete_on_close = delete
    else:
        o.file.delete_pending = delete


async def _set_eof(req: Request, o: Open, buf: memoryview) -> None:
    require(o, FILE_WRITE_DATA)
    if o.is_dir:
        raise SMBError(NTStatus.INVALID_PARAMETER, "end of file of a directory")
    size = fscc.parse_end_of_file_info(buf)
    rt = o.file.runtime
    files = files_of(req)
    if files.oplocks is not None:
        await files.oplocks.break_read_caching(req, o)
    with smb_errors():
        await rt.backend.run(rt.backend.set_end_of_file_sync, o.handle, size)
    if files.notify is not None:
        files.notify.changed(rt.name, o.file.components, 3, _NOTIFY_SIZE)


async def _set_allocation(req: Request, o: Open, buf: memoryview) -> None:
    require(o, FILE_WRITE_DATA | FILE_APPEND_DATA)
    if o.is_dir:
        raise SMBError(NTStatus.INVALID_PARAMETER, "allocation of a directory")
    size = fscc.parse_allocation_info(buf)
    rt = o.file.runtime
    files = files_of(req)
    if files.oplocks is not None:
        await files.oplocks.break_read_caching(req, o)
    with smb_errors():
        await rt.backend.run(rt.backend.set_allocation_sync, o.handle, size)


async def _set_file(req: Request, o: Open, s: wi.SetInfoRequest) -> None:
    cls, buf = s.info_class, s.buffer
    if cls == C.FileBasicInformation:
        await _set_basic(req, o, buf)
    elif cls in (C.FileRenameInformation, C.FileRenameInformationEx):
        await _set_rename(req, o, buf, cls == C.FileRenameInformationEx)
    elif cls == C.FileDispositionInformation:
        await _set_disposition(o, fscc.parse_disposition_info(buf), on_close=False, ignore_ro=False)
    elif cls == C.FileDispositionInformationEx:
        flags = fscc.parse_disposition_info_ex(buf)
        await _set_disposition(
            o,
            bool(flags & fscc.FILE_DISPOSITION_DELETE),
            on_close=bool(flags & fscc.FILE_DISPOSITION_ON_CLOSE),
            ignore_ro=bool(flags & fscc.FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE),
        )
    elif cls == C.FileEndOfFileInformation:
        await _set_eof(req, o, buf)
    elif cls == C.FileAllocationInformation:
        await _set_allocation(req, o, buf)
    elif cls == C.FilePositionInformation:
        o.position = fscc.parse_position_info(buf)
    elif cls == C.FileModeInformation:
        o.mode = fscc.parse_mode_info(buf)
    elif cls == C.FileValidDataLengthInformation:
        require(o, FILE_WRITE_DATA)
        fscc.parse_valid_data_length_info(buf)  # data is always valid up to EOF here
    elif cls == C.FileFullEaInformation:
        require(o, FILE_WRITE_EA)
        entries = fscc.parse_full_ea_info(buf)
        eas.validate(entries)
        rt = o.file.runtime
        with smb_errors():
            await rt.backend.run(eas.apply_eas_sync, rt.backend, o.handle, entries)
    else:
        try:
            C(cls)
        except ValueError:
            raise SMBError(NTStatus.INVALID_INFO_CLASS, f"file class {cls}") from None
        raise SMBError(NTStatus.NOT_SUPPORTED, f"set {C(cls).name}")


async def _set_security(o: Open, s: wi.SetInfoRequest) -> None:
    """Store the parts the request names ([MS-SMB2] 3.3.5.21.3), merged into what the file
    has; CREATE enforces the DACL from then on."""
    parts = s.additional_information & 0x7
    need = 0
    if parts & 0x3:
        need |= WRITE_OWNER
    if parts & 0x4:
        need |= WRITE_DAC
    if need:
        require(o, need)
    new = security.parse(s.buffer)
    rt = o.file.runtime
    with smb_errors():
        blob = await rt.backend.run(rt.backend.get_sd_sync, o.handle)
    old = security.default_descriptor()
    if blob is not None:
        try:
            old = security.parse(blob)
        except ParseError:
            log.warning("unreadable stored security descriptor of %s", o.file.path)
    merged = security.pack(security.merge(old, new, parts))
    with smb_errors():
        await rt.backend.run(rt.backend.set_sd_sync, o.handle, merged)


async def handle_set_info(req: Request) -> Response:
    if req.tree is not None and req.tree.is_ipc:
        return await pipes.handle_set_info(req)
    s = wi.parse_set_info_request(req.body)
    o = lookup(req, s.file_id)
    rt = o.file.runtime
    rt.ops += 1
    if s.info_type == wi.InfoType.FILE:
        if rt.read_only and s.info_class not in (C.FilePositionInformation, C.FileModeInformation):
            raise SMBError(NTStatus.ACCESS_DENIED, "read-only share")
        await _set_file(req, o, s)
    elif s.info_type == wi.InfoType.SECURITY:
        await _set_security(o, s)
    elif s.info_type in (wi.InfoType.FILESYSTEM, wi.InfoType.QUOTA):
        raise SMBError(NTStatus.NOT_SUPPORTED, "set filesystem/quota information")
    else:
        raise SMBError(NTStatus.INVALID_PARAMETER, f"info type {s.info_type}")
    return Response([wi.SET_INFO_RESPONSE])
