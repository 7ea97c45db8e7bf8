"""SMBServer: the object the application builds and runs (drivers live here)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio

from smbd.config import CredentialStore, ServerConfig, ShareConfig
from smbd.server.model import Connection, Session


class SMBServer:
    """The SMB2/3 server. Handlers reach it as ``req.server``: ``.config``, ``.shares``,
    ``.files`` (FileServerState), ``.clock`` (seconds, monotonic), ``.rng`` (n -> bytes),
    ``.log``."""

    def __init__(
        self,
        config: ServerConfig,
        shares: dict[str, ShareConfig],
        credentials: CredentialStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: Callable[[int], bytes] = os.urandom,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self.shares = dict(shares)
        self.credentials = credentials
        self.clock = clock
        self.wall_clock = wall_clock
        self.rng = rng
        self.log = logger or logging.getLogger("smbd")
        self.files: Any = None
        self.sessions: dict[int, Session] = {}
        self.connections: dict[int, Connection] = {}

    def update_shares(self, shares: dict[str, ShareConfig]) -> None:
        self.shares = dict(shares)

    async def serve_tcp(
        self,
        listen: Sequence[tuple[str, int]],
        *,
        task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        return {"sessions": [], "channels": [], "opens": [], "shares": []}
