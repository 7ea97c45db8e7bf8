"""In-process clients for the LOCK, OPLOCK_BREAK, CHANGE_NOTIFY and IOCTL handlers: the
file handlers' harness plus a shared server that records unsolicited breaks and requests
that can go async."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import trio

from smbd.config import ShareConfig
from smbd.server.files import HANDLERS, FileServerState
from smbd.server.request import Request, Response
from smbd.wire.constants import Capabilities, Command
from tests.smbd.files.harness import Client, handler_request


class SharedServer:
    """One server for several clients: connections by id, recorded breaks."""

    def __init__(self, files: FileServerState) -> None:
        self.files = files
        self.now = 1_700_000_000.0
        self.connections: dict[int, Any] = {}
        self.sessions: dict[int, Any] = {}
        self.breaks: list[tuple[int, int, bytes]] = []  # (conn id, command, body)
        self.rng = os.urandom

    def wall_clock(self) -> float:
        return self.now

    async def send_unsolicited(
        self, connection: Any, command: int, parts: list[Any], session: Any = None
    ) -> None:
        self.breaks.append((connection.conn_id, command, b"".join(bytes(p) for p in parts)))


class Hooks:
    """Stands in for the core's go_async: counts interim responses."""

    def __init__(self) -> None:
        self.interim = 0

    async def go_async(self, req: Request) -> int:
        self.interim += 1
        return self.interim


class AsyncClient(Client):
    def __init__(
        self, server: SharedServer, share: ShareConfig, *, client_guid: bytes = b"", **kw: Any
    ) -> None:
        super().__init__(server.files, share, **kw)
        self.server = server  # type: ignore[assignment]
        self.conn.client_guid = client_guid or os.urandom(16)
        self.conn.capabilities = Capabilities.LEASING | Capabilities.LARGE_MTU
        server.connections[self.conn.conn_id] = self.conn
        server.sessions[self.session.session_id] = self.session
        self.hooks = Hooks()

    async def call(self, command: Command, body: bytes | list[Any]) -> Response:
        req = handler_request(
            self.server, self.conn, self.tree, command, body, next(self._mid), self.hooks
        )
        return await HANDLERS[command](req)


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait for ``condition`` (backend I/O runs in worker threads, which
    ``wait_all_tasks_blocked`` counts as blocked)."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.002)


def body_of(resp: Response) -> bytes:
    return b"".join(bytes(p) for p in resp.body)
