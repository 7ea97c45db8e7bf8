"""Named pipes on IPC$ ([MS-SMB2] 3.3.5.9 pipe opens, [MS-FSCC] 2.4.33/2.4.34 pipe
information, FSCTL_PIPE_TRANSCEIVE [MS-FSCC] 2.3.49): each open of ``srvsvc`` or ``wkssvc``
is a message-mode pipe carrying one DCE/RPC association (:mod:`smbd.rpc`).

The file handlers hand every request on an IPC$ tree here. A pipe lives only in memory;
its opens are kept per tree connect (they go away with it) and their number per tree is
capped, as is what each pipe buffers (:class:`smbd.rpc.pipe.PipeLimits`).

READ on a pipe with nothing to read waits (the request goes async with an interim
STATUS_PENDING, as Windows and Samba answer a read on an empty message pipe) until a
response is written or the pipe is closed; CANCEL ends the wait. A READ shorter than the
message it reads answers STATUS_BUFFER_OVERFLOW with what fits, and the next READ gets the
rest; TRANSCEIVE does the same with MaxOutputResponse.
"""

from __future__ import annotations

import itertools
import logging
import struct
import weakref
from typing import TYPE_CHECKING, Any, Final

import trio

from smbd.rpc import ENDPOINTS
from smbd.rpc.pipe import NamedPipe, PipeDisconnected, RpcAssociation, ServerEnv, ShareEntry
from smbd.rpc.srvsvc import (
    SHI1005_FLAGS_CSC_NONE,
    SHI1005_FLAGS_ENCRYPT_DATA,
    STYPE_DISKTREE,
    STYPE_IPC,
    STYPE_SPECIAL,
)
from smbd.server.request import Request, Response, SMBError
from smbd.wire import close as wclose
from smbd.wire import create as wc
from smbd.wire import flush as wflush
from smbd.wire import info as wi
from smbd.wire import ioctl as wio
from smbd.wire import rw
from smbd.wire.fscc import FileInfoClass
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.model import TreeConnect
    from smbd.server.server import SMBServer

__all__ = [
    "PipeService",
    "handle_close",
    "handle_create",
    "handle_flush",
    "handle_query_info",
    "handle_read",
    "handle_set_info",
    "handle_write",
    "server_env",
    "service",
    "transceive",
]

log = logging.getLogger("smbd.files.pipes")

MAX_PIPES_PER_TREE: Final = 64
LIVENESS_CHECK_S: Final = 1.0  # how often a waiting READ looks for its tree connect
FILE_ATTRIBUTE_NORMAL: Final = 0x80
PIPE_ALLOCATION_SIZE: Final = 4096  # what Windows and Samba report for a pipe
FILE_OPENED: Final = 1
# [MS-FSCC] 2.4.33 FilePipeInformation
FILE_PIPE_BYTE_STREAM_MODE: Final = 0
FILE_PIPE_MESSAGE_MODE: Final = 1
FILE_PIPE_QUEUE_OPERATION: Final = 0
FILE_PIPE_COMPLETE_OPERATION: Final = 1
# [MS-FSCC] 2.4.34 FilePipeLocalInformation
FILE_PIPE_MESSAGE_TYPE: Final = 1
FILE_PIPE_FULL_DUPLEX: Final = 2
FILE_PIPE_CONNECTED_STATE: Final = 3
FILE_PIPE_SERVER_END: Final = 1

_STANDARD: Final = struct.Struct("<qqIBB2x")  # [MS-FSCC] 2.4.41 (24 bytes)
_PIPE_INFO: Final = struct.Struct("<II")  # [MS-FSCC] 2.4.33
_PIPE_LOCAL: Final = struct.Struct("<10I")  # [MS-FSCC] 2.4.34


class PipeOpen:
    """One open of a named pipe: the FileId, who opened it, and the pipe."""

    __slots__ = ("closed", "file_id", "name", "pipe", "read_mode", "session_id", "wakeup")

    def __init__(self, file_id: tuple[int, int], session_id: int, name: str, pipe: NamedPipe):
        self.file_id = file_id
        self.session_id = session_id
        self.name = name
        self.pipe = pipe
        self.closed = False
        self.read_mode = FILE_PIPE_MESSAGE_MODE
        self.wakeup = trio.Event()  # set when output arrives or the open closes

    def notify(self) -> None:
        self.wakeup.set()
        self.wakeup = trio.Event()


class PipeService:
    """The pipe opens of one server, by tree connect."""

    def __init__(self, first_id: int) -> None:
        self._trees: weakref.WeakKeyDictionary[TreeConnect, dict[int, PipeOpen]] = (
            weakref.WeakKeyDictionary()
        )
        self._ids = itertools.count(first_id)
        self.opened = 0
        self.refused = 0

    def statistics(self) -> dict[str, Any]:
        return {
            "open": sum(len(t) for t in self._trees.values()),
            "opened": self.opened,
            "refused": self.refused,
        }

    def open_list(self) -> list[dict[str, Any]]:
        """The pipe opens, in the shape of FileServerState.open_list (for ``vmstor status``)."""
        return [
            {
                "session": o.session_id,
                "share": "IPC$",
                "path": o.name,
                "durable": False,
                "lease": "",
            }
            for table in list(self._trees.values())
            for o in table.values()
            if not o.closed
        ]

    def opens(self, tree: TreeConnect) -> dict[int, PipeOpen]:
        table = self._trees.get(tree)
        if table is None:
            table = self._trees[tree] = {}
        return table

    def new_id(self) -> int:
        return next(self._ids) & 0xFFFFFFFFFFFFFFFF


# One PipeService per SMBServer, kept beside it rather than in it (the server and the file
# state belong to other modules): weakly keyed, so it lives exactly as long as its server.
_SERVICES: weakref.WeakKeyDictionary[object, PipeService] = weakref.WeakKeyDictionary()


def service(server: object) -> PipeService:
    """The pipe service of a server (made on first use, gone with the server)."""
    svc = _SERVICES.get(server)
    if svc is None:
        rng = getattr(server, "rng", None)
        seed = int.from_bytes(rng(3), "little") if callable(rng) else 0
        svc = _SERVICES[server] = PipeService((0xFF << 56) | (seed << 16) | 1)
    return svc


def open_list(server: object) -> list[dict[str, Any]]:
    """The server's pipe opens for ``vmstor status`` (none when no pipe was ever opened)."""
    svc = _SERVICES.get(server)
    return svc.open_list() if svc is not None else []


def server_env(server: SMBServer) -> ServerEnv:
    """The server as srvsvc and wkssvc describe it: its name and its share table (every
    configured share, then IPC$), as they are when a call runs."""
    cfg = server.config
    shares = []
    for share in sorted(server.shares.values(), key=lambda s: s.name.lower()):
        flags = 0  # CSC_CACHE_MANUAL_REFERENCE, like the tree connect's ShareFlags
        if share.encrypt or cfg.encrypt:
            flags |= SHI1005_FLAGS_ENCRYPT_DATA
        path = "C:" + str(share.path).replace("/", "\\")
        shares.append(ShareEntry(share.name, STYPE_DISKTREE, share.comment, path, flags))
    shares.append(
        ShareEntry("IPC$", STYPE_IPC | STYPE_SPECIAL, "Remote IPC", "", SHI1005_FLAGS_CSC_NONE)
    )
    return ServerEnv(cfg.server_name, tuple(shares))


def _pipe_name(name: str) -> str:
    """``srvsvc``, ``\\srvsvc`` and ``\\PIPE\\srvsvc`` name the same pipe."""
    n = name.lstrip("\\").lower()
    return n[5:] if n.startswith("pipe\\") else n


def _tree(req: Request) -> TreeConnect:
    if req.session is None:
        raise SMBError(NTStatus.USER_SESSION_DELETED)
    if req.tree is None:
        raise SMBError(NTStatus.NETWORK_NAME_DELETED)
    return req.tree


def _lookup(req: Request, file_id: tuple[int, int]) -> PipeOpen:
    tree = _tree(req)
    persistent, volatile = req.file_id(*file_id)
    o = service(req.server).opens(tree).get(volatile)
    if (
        o is None
        or o.closed
        or o.file_id[0] != persistent
        or req.session is None
        or o.session_id != req.session.session_id
    ):
        raise SMBError(NTStatus.FILE_CLOSED, f"no pipe open {persistent:#x}/{volatile:#x}")
    return o


# -- CREATE / CLOSE / FLUSH ----------------------------------------------------------------------


async def handle_create(req: Request, cr: wc.CreateRequest) -> Response:
    """CREATE on IPC$ (after the request checks every CREATE gets): open a pipe."""
    tree = _tree(req)
    assert req.session is not None
    svc = service(req.server)
    name = _pipe_name(cr.name)
    interfaces = ENDPOINTS.get(name)
    if interfaces is None:
        svc.refused += 1
        raise SMBError(NTStatus.OBJECT_NAME_NOT_FOUND, f"pipe {cr.name!r}")
    table = svc.opens(tree)
    if len(table) >= MAX_PIPES_PER_TREE:
        svc.refused += 1
        raise SMBError(NTStatus.INSUFFICIENT_RESOURCES, "too many pipe opens on this tree")
    volatile = svc.new_id()
    fid = (volatile, volatile)
    server = req.server  # the association keeps the server, not this request's buffers
    assoc = RpcAssociation(
        interfaces,
        sec_addr=f"\\PIPE\\{name}",
        env=lambda: server_env(server),
        assoc_group_id=0x10000 | (volatile & 0xFFFF),
    )
    table[volatile] = PipeOpen(fid, req.session.session_id, name, NamedPipe(assoc))
    svc.opened += 1
    req.set_related_file_id(fid)
    log.debug("pipe %s opened", name, extra={"tree": tree.tree_id, "open": volatile})
    return Response(
        [
            *wc.pack_create_response(
                wc.CreateResponse(
                    oplock_level=0,
                    flags=0,
                    create_action=FILE_OPENED,
                    creation_time=0,
                    last_access_time=0,
                    last_write_time=0,
                    change_time=0,
                    allocation_size=PIPE_ALLOCATION_SIZE,
                    end_of_file=0,
                    file_attributes=FILE_ATTRIBUTE_NORMAL,
                    file_id=fid,
                )
            )
        ]
    )


async def handle_close(req: Request) -> Response:
    cr = wclose.parse_close_request(req.body)
    o = _lookup(req, cr.file_id)
    o.closed = True
    service(req.server).opens(_tree(req)).pop(o.file_id[1], None)
    o.notify()
    if not cr.postquery_attrib:
        return Response([wclose.EMPTY_CLOSE_RESPONSE])
    return Response(
        [
            wclose.pack_close_response(
                wclose.CloseResponse(
                    flags=wclose.CLOSE_FLAG_POSTQUERY_ATTRIB,
                    allocation_size=PIPE_ALLOCATION_SIZE,
                    end_of_file=0,
                    file_attributes=FILE_ATTRIBUTE_NORMAL,
                )
            )
        ]
    )


async def handle_flush(req: Request) -> Response:
    _lookup(req, wflush.parse_flush_request(req.body))
    return Response([wflush.FLUSH_RESPONSE])


# -- READ / WRITE / TRANSCEIVE --------------------------------------------------------------------


def _tree_alive(req: Request) -> bool:
    tree = req.tree
    return tree is not None and tree.session.trees.get(tree.tree_id) is tree


async def _wait_readable(req: Request, o: PipeOpen) -> None:
    """Wait (async, cancellable) until the pipe has a message or is closed. The tree
    connect going away (TREE_DISCONNECT, LOGOFF) closes the open: checked every second."""
    while not o.pipe.readable and not o.closed and not o.pipe.disconnected:
        await req.go_async()
        with trio.move_on_after(LIVENESS_CHECK_S):
            await o.wakeup.wait()
        if not _tree_alive(req):
            o.closed = True
    if o.closed:
        raise SMBError(NTStatus.PIPE_BROKEN, "pipe closed while a read waited")


def _take(o: PipeOpen, length: int) -> tuple[bytes, int]:
    if not o.pipe.readable:
        raise SMBError(NTStatus.PIPE_DISCONNECTED, "pipe disconnected after a fault")
    data, more = o.pipe.read(length)
    return data, NTStatus.BUFFER_OVERFLOW if more else NTStatus.SUCCESS


async def handle_read(req: Request) -> Response:
    r = rw.parse_read_request(req.body)
    o = _lookup(req, r.file_id)
    if r.length > req.connection.max_read_size:
        raise SMBError(NTStatus.INVALID_PARAMETER, f"READ of {r.length} bytes")
    if r.channel != rw.Channel.NONE:
        raise SMBError(NTStatus.INVALID_PARAMETER, "RDMA channel on a pipe")
    await _wait_readable(req, o)
    data, status = _take(o, r.length)
    return Response(rw.pack_read_response(data), status)


def _write(o: PipeOpen, data: memoryview | bytes) -> None:
    try:
        o.pipe.write(data)
    except PipeDisconnected as exc:
        raise SMBError(NTStatus.PIPE_DISCONNECTED, str(exc)) from exc
    if o.pipe.readable:
        o.notify()


async def handle_write(req: Request) -> Response:
    w = rw.parse_write_request(req.body)
    o = _lookup(req, w.file_id)
    if w.channel != rw.Channel.NONE:
        raise SMBError(NTStatus.INVALID_PARAMETER, "RDMA channel on a pipe")
    if len(w.data) > req.connection.max_write_size:
        raise SMBError(NTStatus.INVALID_PARAMETER, f"WRITE of {len(w.data)} bytes")
    _write(o, w.data)
    return Response([rw.pack_write_response(len(w.data))])


async def transceive(req: Request, r: wio.IoctlRequest) -> Response:
    """FSCTL_PIPE_TRANSCEIVE ([MS-SMB2] 3.3.5.15.4; [MS-FSCC] 2.3.49): write the input
    as one message, answer with the reply message (BUFFER_OVERFLOW and the first
    MaxOutputResponse bytes when it is longer; READ takes the rest)."""
    o = _lookup(req, r.file_id)
    if o.pipe.readable:
        raise SMBError(NTStatus.PIPE_BUSY, "TRANSCEIVE with unread data in the pipe")
    _write(o, r.input)
    await _wait_readable(req, o)
    data, status = _take(o, r.max_output_response)
    return Response(wio.pack_ioctl_response(r.ctl_code, o.file_id, data), status)


# -- QUERY_INFO / SET_INFO ----------------------------------------------------------------------


def _file_info(o: PipeOpen, info_class: int) -> bytes:
    if info_class == FileInfoClass.FileStandardInformation:
        # Windows reports a pipe as delete-pending (nothing of it outlives its handles)
        return _STANDARD.pack(PIPE_ALLOCATION_SIZE, 0, 1, 1, 0)
    if info_class == FileInfoClass.FilePipeInformation:
        return _PIPE_INFO.pack(o.read_mode, FILE_PIPE_QUEUE_OPERATION)
    if info_class == FileInfoClass.FilePipeLocalInformation:
        return _PIPE_LOCAL.pack(
            FILE_PIPE_MESSAGE_TYPE,
            FILE_PIPE_FULL_DUPLEX,
            0xFFFFFFFF,  # MaximumInstances: unlimited
            1,  # CurrentInstances
            o.pipe.assoc.limits.max_frag,  # InboundQuota
            o.pipe.available(),  # ReadDataAvailable
            o.pipe.assoc.limits.max_output,  # OutboundQuota
            o.pipe.assoc.limits.max_frag,  # WriteQuotaAvailable
            FILE_PIPE_CONNECTED_STATE,
            FILE_PIPE_SERVER_END,
        )
    raise SMBError(NTStatus.NOT_SUPPORTED, f"file information class {info_class} on a pipe")


async def handle_query_info(req: Request) -> Response:
    q = wi.parse_query_info_request(req.body)
    o = _lookup(req, q.file_id)
    if q.info_type != wi.InfoType.FILE:
        raise SMBError(NTStatus.NOT_SUPPORTED, f"info type {q.info_type} on a pipe")
    out = _file_info(o, q.info_class)
    if q.output_buffer_length < len(out):
        raise SMBError(NTStatus.INFO_LENGTH_MISMATCH)
    return Response(wi.pack_query_info_response(out))


async def handle_set_info(req: Request) -> Response:
    s = wi.parse_set_info_request(req.body)
    o = _lookup(req, s.file_id)
    if s.info_type != wi.InfoType.FILE or s.info_class != FileInfoClass.FilePipeInformation:
        raise SMBError(NTStatus.NOT_SUPPORTED, f"set info {s.info_type}/{s.info_class} on a pipe")
    if len(s.buffer) < _PIPE_INFO.size:
        raise SMBError(NTStatus.INFO_LENGTH_MISMATCH)
    read_mode, completion = _PIPE_INFO.unpack_from(s.buffer)
    if read_mode != FILE_PIPE_MESSAGE_MODE or completion != FILE_PIPE_QUEUE_OPERATION:
        # a message-type pipe reads in message mode; blocking completion only
        raise SMBError(NTStatus.INVALID_PARAMETER, "pipe mode")
    o.read_mode = read_mode
    return Response([wi.SET_INFO_RESPONSE])
