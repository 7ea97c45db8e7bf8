"""SMB2 CLOSE ([MS-SMB2] 3.3.5.10) and FLUSH (3.3.5.11)."""

from __future__ import annotations

from smbd.server.files import inflight, pipes
from smbd.server.files.common import (
    FILE_APPEND_DATA,
    FILE_WRITE_DATA,
    files_of,
    lookup,
    require,
    smb_errors,
)
from smbd.server.request import Request, Response, SMBError
from smbd.wire import close as wclose
from smbd.wire import flush as wflush
from smbd.wire.status import NTStatus

__all__ = ["handle_close", "handle_flush"]


async def handle_close(req: Request) -> Response:
    if req.tree is not None and req.tree.is_ipc:
        return await pipes.handle_close(req)
    cr = wclose.parse_close_request(req.body)
    o = lookup(req, cr.file_id)
    await inflight.wait_idle(o)  # requests still running on the open answer first
    if o.closed:  # closed meanwhile (by a CLOSE that waited alongside)
        raise SMBError(NTStatus.FILE_CLOSED)
    files = files_of(req)
    rt = o.file.runtime
    rt.ops += 1
    if not cr.postquery_attrib:
        await files.close(o)
        return Response([wclose.EMPTY_CLOSE_RESPONSE])
    try:
        with smb_errors():
            st = await rt.backend.stat(o.handle)
    finally:
        await files.close(o)
    return Response(
        [
            wclose.pack_close_response(
                wclose.CloseResponse(
                    flags=wclose.CLOSE_FLAG_POSTQUERY_ATTRIB,
                    creation_time=st.creation_time,
                    last_access_time=st.last_access_time,
                    last_write_time=st.last_write_time,
                    change_time=st.change_time,
                    allocation_size=st.allocation_size,
                    end_of_file=st.end_of_file,
                    file_attributes=st.attributes,
                )
            )
        ]
    )


async def handle_flush(req: Request) -> Response:
    """FLUSH always reaches stable storage (fsync), whatever the open's options."""
    if req.tree is not None and req.tree.is_ipc:
        return await pipes.handle_flush(req)
    fid = wflush.parse_flush_request(req.body)
    o = lookup(req, fid)
    if not o.is_dir:
        require(o, FILE_WRITE_DATA | FILE_APPEND_DATA)
    rt = o.file.runtime
    rt.ops += 1
    with smb_errors():
        await rt.backend.flush(o.handle)
    return Response([wflush.FLUSH_RESPONSE])
