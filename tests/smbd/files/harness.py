"""Drive the file handlers in process: real FileServerState, backend and model objects,
requests built with the wire codecs, no sockets."""

from __future__ import annotations

import itertools
import os
import struct
from pathlib import Path
from typing import Any

from smbd.config import ShareConfig
from smbd.server.files import HANDLERS, FileServerState
from smbd.server.model import Connection, Session, TreeConnect
from smbd.server.request import AsyncHooks, Request, Response, SMBError
from smbd.wire import close as wclose
from smbd.wire import create as wc
from smbd.wire import info as wi
from smbd.wire import query_directory as wq
from smbd.wire import rw
from smbd.wire.constants import Command
from smbd.wire.header import Header, pack_header
from smbd.wire.status import NTStatus

FULL = 0x001F01FF
SHARE_ALL = 0x7


def handler_request(
    server: Any,
    conn: Connection,
    tree: TreeConnect,
    command: Command,
    body: bytes | list[Any],
    message_id: int,
    hooks: AsyncHooks | None = None,
) -> Request:
    """The Request the processor would hand a file handler for ``body`` (a plain SYNC
    header on ``tree``): the handlers run in process, with no transport."""
    raw = b"".join(bytes(p) for p in body) if isinstance(body, list) else body
    header = Header(
        1, 0, command, 1, 0, 0, message_id, 0, tree.tree_id, tree.session.session_id, bytes(16)
    )  # fmt: skip
    msg = memoryview(bytes(pack_header(header)) + raw)
    return Request(
        header=header,
        body=msg[64:],
        message=msg,
        server=server,
        connection=conn,
        session=tree.session,
        tree=tree,
        hooks=hooks,
    )


class FakeServer:
    def __init__(self, files: FileServerState) -> None:
        self.files = files
        self.now = 1_700_000_000.0

    def wall_clock(self) -> float:
        return self.now


class Client:
    """One session with one tree connect on a share."""

    _ids = itertools.count(1)

    def __init__(
        self, files: FileServerState, share: ShareConfig, *, dialect: int = 0x0311
    ) -> None:
        self.server = FakeServer(files)
        self.conn = Connection(next(self._ids), "127.0.0.1:1")
        self.conn.dialect = dialect
        self.conn.max_read_size = self.conn.max_write_size = 8 << 20
        self.conn.max_transact_size = 8 << 20
        self.session = Session(next(self._ids), self.conn, 0.0)
        self.session.user = "alice"
        self.tree = TreeConnect(
            next(self._ids),
            self.session,
            share.name,
            share,
            maximal_access=FULL,
            encrypt_data=False,
        )
        self.session.trees[self.tree.tree_id] = self.tree
        self._mid = itertools.count(1)

    async def call(self, command: Command, body: bytes | list[Any]) -> Response:
        req = handler_request(self.server, self.conn, self.tree, command, body, next(self._mid))
        return await HANDLERS[command](req)

    async def status_of(self, command: Command, body: bytes | list[Any]) -> int:
        try:
            return (await self.call(command, body)).status
        except SMBError as exc:
            return exc.status

    async def create(
        self,
        name: str,
        *,
        disposition: int = wc.CreateDisposition.OPEN_IF,
        access: int = FULL,
        share: int = SHARE_ALL,
        options: int = 0,
        attributes: int = 0,
        contexts: tuple[tuple[bytes, bytes], ...] = (),
    ) -> wc.CreateResponse:
        body = wc.pack_create_request(
            wc.CreateRequest(
                0,
                0,
                2,
                0,
                access,
                attributes,
                share,
                disposition,
                options,
                name,
                tuple(wc.CreateContext(n, memoryview(d)) for n, d in contexts),
            )
        )
        resp = await self.call(Command.CREATE, body)
        assert resp.status == NTStatus.SUCCESS
        return wc.parse_create_response(b"".join(bytes(p) for p in resp.body))

    async def create_status(self, name: str, **kw: Any) -> int:
        try:
            await self.create(name, **kw)
        except SMBError as exc:
            return exc.status
        return NTStatus.SUCCESS

    async def close(self, fid: tuple[int, int], postquery: bool = False) -> wclose.CloseResponse:
        resp = await self.call(
            Command.CLOSE, wclose.pack_close_request(wclose.CloseRequest(int(postquery), fid))
        )
        return wclose.parse_close_response(b"".join(bytes(p) for p in resp.body))

    async def write(self, fid: tuple[int, int], offset: int, data: bytes, flags: int = 0) -> int:
        resp = await self.call(
            Command.WRITE,
            rw.pack_write_request(rw.WriteRequest(memoryview(data), offset, fid, 0, 0, flags)),
        )
        return rw.parse_write_response(b"".join(bytes(p) for p in resp.body))[0]

    async def read(self, fid: tuple[int, int], offset: int, length: int, minimum: int = 0) -> bytes:
        resp = await self.call(
            Command.READ,
            rw.pack_read_request(rw.ReadRequest(0, 0, length, offset, fid, minimum, 0, 0)),
        )
        return bytes(rw.parse_read_response(b"".join(bytes(p) for p in resp.body)).data)

    async def query_dir(
        self,
        fid: tuple[int, int],
        pattern: str = "*",
        *,
        flags: int = 0,
        limit: int = 65536,
        cls: int = 37,
    ) -> Response:
        return await self.call(
            Command.QUERY_DIRECTORY,
            wq.pack_query_directory_request(
                wq.QueryDirectoryRequest(cls, flags, 0, fid, pattern, limit)
            ),
        )

    async def query_info(
        self, fid: tuple[int, int], info_type: int, cls: int, limit: int = 65536, addl: int = 0
    ) -> Response:
        return await self.call(
            Command.QUERY_INFO,
            wi.pack_query_info_request(
                wi.QueryInfoRequest(info_type, cls, limit, memoryview(b""), addl, 0, fid)
            ),
        )

    async def set_info(
        self, fid: tuple[int, int], info_type: int, cls: int, data: bytes
    ) -> Response:
        return await self.call(
            Command.SET_INFO,
            wi.pack_set_info_request(wi.SetInfoRequest(info_type, cls, memoryview(data), 0, fid)),
        )


def body_bytes(resp: Response) -> bytes:
    return b"".join(bytes(p) for p in resp.body)


def make_state(root: Path, **share_kw: Any) -> tuple[FileServerState, ShareConfig]:
    from smbd.config import ServerConfig

    share = ShareConfig("vms", root, **share_kw)
    state = FileServerState(
        ServerConfig(server_guid=bytes(16)), {"vms": share}, clock=lambda: 0.0, rng=os.urandom
    )
    return state, share


def u32(b: bytes, off: int) -> int:
    return int(struct.unpack_from("<I", b, off)[0])
