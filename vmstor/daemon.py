"""The daemon: builds every subsystem from the config and runs them in one nursery."""

from __future__ import annotations

import logging
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from rdma.config import RdmaConfig, RdmaConfigError
from rdma.providers import open_device
from smbd.config import DIALECT_NAMES, ServerConfig, ShareConfig
from smbd.server import SMBServer
from vmstor import control
from vmstor.config import Config, ConfigError, load
from vmstor.san import SanService
from vmstor.statefile import read_json, write_json
from vmstor.users import UserDB

log = logging.getLogger("vmstor.daemon")


def server_guid(state_dir: Path) -> bytes:
    """A GUID that stays the same across restarts (clients key durable state on it)."""
    path = state_dir / "server.json"
    data = read_json(path, {})
    if "guid" not in data:
        data["guid"] = str(uuid.uuid4())
        write_json(path, data)
    return uuid.UUID(data["guid"]).bytes_le


def smb_shares(cfg: Config) -> dict[str, ShareConfig]:
    return {
        key: ShareConfig(
            name=s.name,
            path=s.path,
            encrypt=s.encrypt,
            read_only=s.read_only,
            continuous_availability=s.continuous_availability,
            comment=s.comment,
            valid_users=(
                None if s.valid_users is None else frozenset(u.casefold() for u in s.valid_users)
            ),
        )
        for key, s in cfg.shares.items()
    }


def smb_config(cfg: Config) -> ServerConfig:
    try:
        lo = DIALECT_NAMES[cfg.smb.min_dialect]
        hi = DIALECT_NAMES[cfg.smb.max_dialect]
    except KeyError as e:
        raise ConfigError(f"{cfg.path}: unknown dialect {e.args[0]!r}") from None
    return ServerConfig(
        server_guid=server_guid(cfg.state_dir),
        server_name=cfg.smb.server_name,
        require_signing=cfg.smb.require_signing,
        encrypt=cfg.smb.encrypt,
        allow_guest=cfg.smb.allow_guest,
        min_dialect=lo,
        max_dialect=hi,
        multichannel=cfg.smb.multichannel,
        smbtorture_hooks=cfg.smb.smbtorture_hooks,
    )


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        os.makedirs(cfg.state_dir, mode=0o700, exist_ok=True)
        for share in cfg.shares.values():
            share.path.mkdir(parents=True, exist_ok=True)
        self.users = UserDB(cfg.state_dir)
        self.smb = SMBServer(smb_config(cfg), smb_shares(cfg), self.users)
        try:
            self.rdma = RdmaConfig.from_table(cfg.section("rdma"))
        except RdmaConfigError as e:
            raise ConfigError(f"{cfg.path}: {e}") from None
        # name -> callable run on "reload" requests from the CLI
        self.reloaders: dict[str, Callable[[], None]] = {"config": self.reload_config}
        self.status_sources: dict[str, Callable[[], Any]] = {"smb": self.smb.status}
        self.san: SanService | None = None
        if "iscsi" in cfg.raw:
            self.san = SanService(cfg)
            self.reloaders["san"] = self.san.reload
            self.status_sources["san"] = self.san.status

    def reload_config(self) -> None:
        self.cfg = load(self.cfg.path)
        self.smb.update_shares(smb_shares(self.cfg))

    def _status(self, req: dict[str, Any]) -> dict[str, Any]:
        return {name: source() for name, source in self.status_sources.items()}

    def _reload(self, req: dict[str, Any]) -> str:
        what = str(req.get("what", "config"))
        if what not in self.reloaders:
            raise ValueError(f"nothing to reload called {what!r}")
        self.reloaders[what]()
        return what

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.smb.serve_tcp, list(self.cfg.smb.listen))
            if self.rdma.enabled:
                bound = await nursery.start(self._serve_rdma)
                log.info(
                    "serving SMB Direct (%s) on %s",
                    self.rdma.provider,
                    ", ".join(f"{h}:{p}" for h, p in bound),
                )
            if self.san is not None:
                await nursery.start(self.san.run)
            await nursery.start(
                control.serve,
                self.cfg.state_dir / control.SOCKET_NAME,
                {"status": self._status, "reload": self._reload},
            )
            log.info(
                "serving SMB on %s",
                ", ".join(f"{h}:{p}" for h, p in self.cfg.smb.listen),
                extra={"shares": sorted(self.cfg.shares)},
            )
            task_status.started()

    async def _serve_rdma(
        self,
        *,
        task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """SMB over SMB Direct on the [rdma] listeners, through the configured provider."""
        try:
            async with open_device(self.rdma) as device:
                await self.smb.serve_rdma(device, list(self.rdma.listen), task_status=task_status)
        except RdmaConfigError as e:
            raise ConfigError(f"{self.cfg.path}: {e}") from None


async def serve_until_signal(cfg: Config, on_ready: Callable[[], None] | None = None) -> None:
    """Run the daemon until SIGINT or SIGTERM, then stop every subsystem cleanly."""
    daemon = Daemon(cfg)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            if on_ready is not None:
                on_ready()
            async for signum in signals:
                log.info("received %s, stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
