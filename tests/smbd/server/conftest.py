"""A real SMBServer on 127.0.0.1 with an ephemeral port, for the tests of this folder."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trio

from smbd.auth.nthash import nt_hash
from smbd.config import ServerConfig, ShareConfig
from smbd.server import SMBServer
from smbd.server.server import ServerLimits
from tests.smbd.server.rawclient import RawClient

USER = "alice"
PASSWORD = "Secret-123"


class Creds:
    def __init__(self) -> None:
        self.users = {USER: nt_hash(PASSWORD), "bob": nt_hash("bobpass")}

    def lookup(self, name: str) -> tuple[str, bytes] | None:
        h = self.users.get(name.lower())
        return (name.lower(), h) if h is not None else None


@dataclass
class Running:
    server: SMBServer
    port: int
    root: Path
    clients: list[RawClient]

    async def client(self) -> RawClient:
        c = await RawClient.connect(self.port)
        self.clients.append(c)
        return c

    async def session(self, dialects: tuple[int, ...] = (0x0311,), **kw: Any) -> RawClient:
        c = await self.client()
        r = await c.negotiate(dialects, **kw)
        assert r.status == 0, hex(r.status)
        r = await c.session_setup(USER, PASSWORD)
        assert r.status == 0, hex(r.status)
        return c


@pytest.fixture
async def start_server(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    clients: list[RawClient] = []

    async def start(
        *, limits: ServerLimits | None = None, handlers: dict[int, Any] | None = None, **cfg: Any
    ) -> Running:
        root = tmp_path / "share"
        root.mkdir(exist_ok=True)
        config = replace(ServerConfig(server_guid=uuid.UUID(int=0x1234).bytes_le), **cfg)
        shares = {
            "share": ShareConfig("share", root),
            "enc": ShareConfig("enc", root, encrypt=True),
            "ro": ShareConfig("ro", root, read_only=True),
        }
        server = SMBServer(
            config,
            shares,
            Creds(),
            limits=limits,
            handlers=handlers,
            logger=logging.getLogger("smbd.test"),
        )
        addrs = await nursery.start(server.serve_tcp, [("127.0.0.1", 0)])
        return Running(server, addrs[0][1], root, clients)

    yield start
    for c in clients:
        await c.aclose()


@pytest.fixture
async def smb(start_server: Callable[..., Any]) -> AsyncIterator[Running]:
    yield await start_server()
