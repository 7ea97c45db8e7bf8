"""SMB2 QUERY_DIRECTORY ([MS-SMB2] 3.3.5.18).

The first query (or one with RESTART_SCANS / REOPEN) snapshots the directory's names --
``.`` and ``..`` first, as Windows lists them -- into the open's cursor; each query then
stats and encodes matching names from the cursor on, in a worker thread, until the client's
output buffer is full.
"""

from __future__ import annotations

from collections.abc import Iterator

from smbd.backend import FileStat, PosixShare
from smbd.backend.wildcard import match
from smbd.server.files.common import FILE_READ_DATA, lookup, require, smb_errors
from smbd.server.files.info import short_name
from smbd.server.files.opens import DirCursor, Open
from smbd.server.request import Request, Response, SMBError
from smbd.wire import fscc
from smbd.wire import query_directory as wq
from smbd.wire.status import NTStatus

__all__ = ["handle_query_directory"]


def _entry(name: str, st: FileStat) -> fscc.DirEntry:
    return fscc.DirEntry(
        name=name,
        creation_time=st.creation_time,
        last_access_time=st.last_access_time,
        last_write_time=st.last_write_time,
        change_time=st.change_time,
        end_of_file=st.end_of_file,
        allocation_size=st.allocation_size,
        file_attributes=st.attributes,
        file_id=st.file_id,
        ea_size=st.ea_size,
        short_name=_short(name),
    )


def _short(name: str) -> str:
    """The 8.3 name, empty when the name already is one (as NTFS lists it)."""
    if name in (".", ".."):
        return ""
    short = short_name(name)
    return "" if short == name else short


def _fill(
    backend: PosixShare, o: Open, cursor: DirCursor, info_class: int, limit: int, single: bool
) -> tuple[bytes, int, int]:
    """Encode entries from the cursor on; returns (buffer, count, next index)."""
    consumed: list[int] = []

    def entries() -> Iterator[fscc.DirEntry]:
        for i in range(cursor.index, len(cursor.names)):
            name = cursor.names[i]
            if not match(cursor.pattern, name):
                continue
            if name == "." or (name == ".." and not o.handle.components):
                st: FileStat | None = backend.stat_sync(o.handle)
            else:
                st = backend.stat_entry_sync(o.handle, name)
            if st is None:  # vanished, or a symlink/device the share never shows
                continue
            consumed.append(i)
            yield _entry(name, st)

    buf, count = fscc.encode_directory_entries(info_class, entries(), limit, single=single)
    nxt = consumed[count - 1] + 1 if count else cursor.index
    if count == 0 and not consumed:
        nxt = len(cursor.names)  # nothing left that matches
    return buf, count, nxt


async def handle_query_directory(req: Request) -> Response:
    q = wq.parse_query_directory_request(req.body)
    o = lookup(req, q.file_id)
    if not o.is_dir:
        raise SMBError(NTStatus.INVALID_PARAMETER, "QUERY_DIRECTORY on a file")
    require(o, FILE_READ_DATA)
    if q.info_class not in fscc.DIRECTORY_ENCODERS:
        raise SMBError(NTStatus.INVALID_INFO_CLASS, f"directory class {q.info_class}")
    if q.output_buffer_length > req.connection.max_transact_size:
        raise SMBError(NTStatus.INVALID_PARAMETER, "output buffer beyond MaxTransactSize")
    pattern = q.pattern or "*"
    if "\\" in pattern or "/" in pattern or "\0" in pattern:
        raise SMBError(NTStatus.OBJECT_NAME_INVALID, "bad search pattern")
    rt = o.file.runtime
    rt.ops += 1
    flags = wq.QueryDirectoryFlags(q.flags)
    cursor = o.cursor
    if cursor is None or flags & (
        wq.QueryDirectoryFlags.RESTART_SCANS | wq.QueryDirectoryFlags.REOPEN
    ):
        with smb_errors():
            names = await rt.backend.run(rt.backend.list_names_sync, o.handle)
        if cursor is not None and not flags & wq.QueryDirectoryFlags.REOPEN and not q.pattern:
            pattern = cursor.pattern
        cursor = DirCursor(pattern, [".", "..", *names])
        o.cursor = cursor
    single = bool(flags & wq.QueryDirectoryFlags.RETURN_SINGLE_ENTRY)
    with smb_errors():
        buf, count, nxt = await rt.backend.run(
            _fill, rt.backend, o, cursor, q.info_class, q.output_buffer_length, single
        )
    if count == 0:
        if nxt < len(cursor.names):  # the next entry does not fit at all
            raise SMBError(NTStatus.INFO_LENGTH_MISMATCH, "output buffer too small")
        cursor.index = nxt
        first, cursor.started = not cursor.started, True
        if first:
            raise SMBError(NTStatus.NO_SUCH_FILE, f"nothing matches {cursor.pattern!r}")
        raise SMBError(NTStatus.NO_MORE_FILES)
    cursor.index = nxt
    cursor.started = True
    return Response(wq.pack_query_directory_response(buf))
