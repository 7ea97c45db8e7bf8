"""SMBServer: the object the application builds and runs. It owns the global tables
(sessions, connections), the listeners and the per-connection processors."""

from __future__ import annotations

import fcntl
import importlib
import inspect
import ipaddress
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from smbd.config import CredentialStore, ServerConfig, ShareConfig
from smbd.server import negotiate, sessions, trees
from smbd.server.model import LOGGED_OFF_KEPT, Connection, Session, SessionState, TreeConnect
from smbd.server.processor import ConnectionProcessor
from smbd.server.request import Handler
from smbd.transport.tcp import TCPTransport, open_tcp_listeners
from smbd.wire.constants import Command
from smbd.wire.rw import WRITE_DATA_OFFSET

__all__ = ["SMBServer", "ServerLimits"]

_SMALL_PDU = 65536 + 4096
_PDU_SLACK = 65536  # headers, compound padding, transform header on top of the payload


@dataclass(frozen=True)
class ServerLimits:
    """Per-client bounds (memory a client can pin, time it can hold a connection idle)."""

    handshake_timeout: float = 30.0  # no session established within this: drop
    frame_timeout: float = 60.0  # a started frame must complete within this
    send_timeout: float = 60.0  # a client that does not read for this long is dropped
    inflight_bytes: int = 64 << 20  # request bytes a connection may have in processing
    max_credits: int = 8192  # the credit window ([MS-SMB2] 3.3.1.2)
    async_per_connection: int = 512
    sessions_per_connection: int = 64
    trees_per_session: int = 1024
    channels_per_session: int = 32


CORE_HANDLERS: dict[int, Handler] = {
    Command.NEGOTIATE: negotiate.handle_negotiate,
    Command.SESSION_SETUP: sessions.handle_session_setup,
    Command.LOGOFF: sessions.handle_logoff,
    Command.TREE_CONNECT: trees.handle_tree_connect,
    Command.TREE_DISCONNECT: trees.handle_tree_disconnect,
    Command.ECHO: trees.handle_echo,
}


def _load_files_module() -> Any:
    try:
        return importlib.import_module("smbd.server.files")
    except ImportError:
        return None


class SMBServer:
    """The SMB2/3 server. Handlers reach it as ``req.server``: ``.config``, ``.shares``,
    ``.files`` (FileServerState), ``.clock`` (seconds, monotonic), ``.wall_clock``,
    ``.rng`` (n -> bytes), ``.log``, ``.limits``."""

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
        limits: ServerLimits | None = None,
        files: Any = None,
        handlers: Mapping[int, Handler] | None = None,
    ) -> None:
        self.config = config
        self.shares = dict(shares)
        self.credentials = credentials
        self.clock = clock
        self.wall_clock = wall_clock
        self.rng = rng
        self.log = logger or logging.getLogger("smbd")
        self.limits = limits or ServerLimits()
        self.sessions: dict[int, Session] = {}
        self.connections: dict[int, Connection] = {}
        self.processors: dict[int, ConnectionProcessor] = {}
        self.listening: list[tuple[str, int]] = []
        self.rdma_listening: list[tuple[str, int]] = []  # SMB Direct listeners
        self._next_conn_id = 1
        self._stats = {"connections": 0, "sessions": 0, "logoffs": 0}
        files_mod = _load_files_module()
        if files is None and files_mod is not None:
            state_mod = importlib.import_module("smbd.server.files.state")
            files = state_mod.FileServerState(
                config, self.shares, clock=clock, rng=rng, logger=self.log.getChild("files")
            )
        self.files: Any = files
        table: dict[int, Handler] = {}
        files_handlers: Mapping[int, Handler] = (
            getattr(files_mod, "HANDLERS", {}) if files_mod is not None else {}
        )
        table.update(files_handlers)
        table.update(CORE_HANDLERS)
        table[Command.IOCTL] = trees.make_ioctl_handler(files_handlers.get(Command.IOCTL))
        if handlers:
            table.update(handlers)
        self.handlers: dict[int, Handler] = table
        # reads a lone READ's data when the page cache holds it, and tells whether a lone
        # WRITE would be written without a thread, so that the connection processes
        # them without a task (processor); only with the file handlers' own READ/WRITE
        self.preread: Callable[[Any, memoryview], Any] | None = None
        self.write_now: Callable[[Any, memoryview], bool] | None = None
        if files_mod is not None and table.get(Command.READ) is files_handlers.get(Command.READ):
            self.preread = getattr(files_mod, "preread", None)
        if files_mod is not None and table.get(Command.WRITE) is files_handlers.get(Command.WRITE):
            self.write_now = getattr(files_mod, "write_now", None)

    # ---------------------------------------------------------------- shares

    def update_shares(self, shares: dict[str, ShareConfig]) -> None:
        """Replace the share table. Existing tree connects keep working; new ones see
        the new table."""
        self.shares = dict(shares)
        if self.files is not None and hasattr(self.files, "update_shares"):
            self.files.update_shares(self.shares)
        self.log.info("shares: %s", ", ".join(sorted(self.shares)) or "(none)")

    def find_share(self, name: str) -> ShareConfig | None:
        key = name.lower()
        for k, share in self.shares.items():
            if k.lower() == key or share.name.lower() == key:
                return share
        return None

    # ---------------------------------------------------------------- sessions

    def new_session(self, conn: Connection) -> Session:
        while True:
            sid = int.from_bytes(self.rng(8), "little") & 0x7FFF_FFFF_FFFF_FFFF
            if sid and sid not in self.sessions:
                break
        session = Session(sid, conn, self.clock())
        self.sessions[sid] = session
        conn.sessions[sid] = session
        self._stats["sessions"] += 1
        return session

    async def tree_disconnect(self, tree: TreeConnect) -> None:
        tree.session.trees.pop(tree.tree_id, None)
        if self.files is not None:
            await _maybe_await(self.files.close_tree(tree))

    async def logoff(self, session: Session) -> None:
        """[MS-SMB2] 3.3.5.6 / 3.3.7.1: end a session on every channel."""
        if self.sessions.get(session.session_id) is not session:
            return
        del self.sessions[session.session_id]
        session.state = SessionState.EXPIRED
        for ch in session.channels:
            conn = ch.connection
            conn.sessions.pop(session.session_id, None)
            conn.logged_off[session.session_id] = session
            while len(conn.logged_off) > LOGGED_OFF_KEPT:
                del conn.logged_off[next(iter(conn.logged_off))]
        session.connection.sessions.pop(session.session_id, None)
        if self.files is not None and session.trees:
            await _maybe_await(self.files.close_session(session))
        session.trees.clear()
        self._stats["logoffs"] += 1

    def _connection_lost(self, conn: Connection) -> None:
        for sid, session in list(conn.sessions.items()):
            session.channels = [c for c in session.channels if c.connection is not conn]
            if not session.channels or session.state is not SessionState.VALID:
                session.state = SessionState.EXPIRED
                if self.sessions.get(sid) is session:
                    del self.sessions[sid]
        conn.sessions.clear()
        if self.files is not None:
            try:
                self.files.connection_lost(conn)
            except Exception:
                self.log.exception("files.connection_lost failed", extra={"conn": conn.conn_id})

    # ---------------------------------------------------------------- serving

    async def serve_tcp(
        self,
        listen: Sequence[tuple[str, int]],
        *,
        task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on each (host, port) (port 0: any free port) and serve until cancelled.
        ``nursery.start`` returns the bound addresses."""
        socks = await open_tcp_listeners(listen)
        bound = [tuple(s.getsockname()[:2]) for s in socks]
        self.listening = [(str(h), int(p)) for h, p in bound]
        try:
            async with trio.open_nursery() as nursery:
                for s in socks:
                    nursery.start_soon(self._accept_loop, s, nursery)
                task_status.started(list(self.listening))
        finally:
            for s in socks:
                s.close()
            for s_id in list(self.processors):
                self.processors[s_id].conn.closed = True
            if self.files is not None and hasattr(self.files, "close_all"):
                try:
                    self.files.close_all()
                except Exception:
                    self.log.exception("files.close_all failed")

    async def serve_rdma(
        self,
        device: Any,
        listen: Sequence[tuple[str, int]],
        *,
        task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept SMB Direct connections on the verbs ``device`` (an
        :func:`rdma.providers.open_device` device) at each (host, port) and serve SMB2 on
        them like TCP connections. ``nursery.start`` returns the bound addresses."""
        from rdma.smbdirect import SmbDirectChannel, SmbDirectServer
        from smbd.transport.smbdirect import SmbDirectTransport

        async def handler(channel: SmbDirectChannel) -> None:
            await self.serve_transport(SmbDirectTransport(channel))

        acceptor = SmbDirectServer(device)
        async with trio.open_nursery() as nursery:
            bound: list[tuple[str, int]] = []
            for host, port in listen:
                addr = await nursery.start(acceptor.serve, host, port, handler)
                bound.append((str(addr[0]), int(addr[1])))
            self.rdma_listening.extend(bound)
            task_status.started(bound)

    async def _accept_loop(self, listener: trio.socket.SocketType, nursery: trio.Nursery) -> None:
        while True:
            try:
                sock, _addr = await listener.accept()
            except OSError as e:
                self.log.warning("accept failed: %s", e)
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self._serve_socket, sock)

    async def _serve_socket(self, sock: trio.socket.SocketType) -> None:
        transport = TCPTransport(
            sock,
            max_message_size=_SMALL_PDU,
            frame_timeout=self.limits.frame_timeout,
            send_timeout=self.limits.send_timeout,
            align_at=WRITE_DATA_OFFSET,  # a WRITE's data: copied to the file from there
        )
        with sock:
            await self.serve_transport(transport)

    async def serve_transport(self, transport: Any) -> None:
        """Run the SMB2 protocol over one connected transport until it ends."""
        cid = self._next_conn_id
        self._next_conn_id += 1
        conn = Connection(
            cid,
            transport.peer,
            transport.name,
            local=transport.local,
            max_credits=self.limits.max_credits,
        )
        proc = ConnectionProcessor(self, transport, conn, self.handlers)
        proc.on_negotiated = lambda: self._size_transport(transport, conn)
        self.connections[cid] = conn
        self.processors[cid] = proc
        self._stats["connections"] += 1
        self.log.info("connection from %s", conn.peer, extra={"conn": cid})
        try:
            await proc.run()
        finally:
            del self.connections[cid]
            del self.processors[cid]
            self._connection_lost(conn)
            self.log.info("connection from %s closed", conn.peer, extra={"conn": cid})

    def _size_transport(self, transport: Any, conn: Connection) -> None:
        if conn.supports_large_mtu:
            biggest = max(conn.max_write_size, conn.max_transact_size, conn.max_read_size)
            transport.max_message_size = biggest + _PDU_SLACK
        else:
            transport.max_message_size = _SMALL_PDU

    async def send_unsolicited(
        self,
        connection: Connection,
        command: int,
        parts: list[bytes | bytearray | memoryview],
        session: Session | None = None,
    ) -> None:
        """Send an oplock or lease break ([MS-SMB2] 2.2.23, 2.2.24) on a connection:
        MessageId all ones, encrypted when ``session`` requires it."""
        proc = self.processors.get(connection.conn_id)
        if proc is None or connection.closed:
            return
        await proc.send_unsolicited(command, parts, session)

    # ---------------------------------------------------------------- interfaces

    def network_interface_info(self, conn: Connection) -> bytes:
        """[MS-SMB2] 2.2.32.5 for the addresses the server listens on (every address of
        the host for a wildcard listener), each marked RSS-capable, and RDMA-capable where
        an SMB Direct listener covers it."""
        entries: list[tuple[int, int, int, int, bytes]] = []
        seen: set[bytes] = set()
        ifaces = _host_interfaces()
        for host, _port in [*self.listening, *self.rdma_listening]:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                continue
            for if_index, name, addr in ifaces:
                if ip.is_unspecified:
                    if addr.version != ip.version or addr.is_loopback:
                        continue
                elif addr != ip:
                    continue
                packed = addr.packed
                if packed in seen:
                    continue
                seen.add(packed)
                family = 2 if addr.version == 4 else 23
                caps = trees.RSS_CAPABLE | self._rdma_capability(addr)
                entries.append((if_index, caps, _link_speed(name), family, packed))
        if not entries:
            # the address the client reached us on
            try:
                host = conn.local.rsplit(":", 1)[0].strip("[]")
                ip = ipaddress.ip_address(host)
                family = 2 if ip.version == 4 else 23
                entries.append((0xFFFFFFFF, trees.RSS_CAPABLE, 1_000_000_000, family, ip.packed))
            except ValueError:
                pass
        return trees.pack_network_interfaces(entries)

    def _rdma_capability(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
        for host, _port in self.rdma_listening:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                continue
            if ip == addr or (ip.is_unspecified and ip.version == addr.version):
                return trees.RDMA_CAPABLE
        return 0

    # ---------------------------------------------------------------- reporting

    def status(self) -> dict[str, Any]:
        sess = []
        channels = []
        for s in self.sessions.values():
            if s.state is not SessionState.VALID:
                continue
            sid = f"0x{s.session_id:016x}"
            sess.append(
                {
                    "id": sid,
                    "user": f"{s.domain}\\{s.user}" if s.domain else s.user,
                    "dialect": _dialect_text(s.dialect),
                    "signed": s.signing_required,
                    "encrypted": s.encrypt_data or s.encrypted_traffic,
                    "channels": len(s.channels),
                }
            )
            for ch in s.channels:
                channels.append(
                    {
                        "session": sid,
                        "connection": ch.connection.conn_id,
                        "peer": ch.connection.peer,
                        "transport": ch.connection.transport,
                    }
                )
        files = self.files
        from smbd.server.files import pipes  # the file handlers load after the core

        return {
            "sessions": sess,
            "channels": channels,
            "opens": (files.open_list() if files is not None else []) + pipes.open_list(self),
            "shares": files.share_statistics()
            if files is not None
            else [
                {"name": s.name, "path": str(s.path), "bytes_read": 0, "bytes_written": 0, "ops": 0}
                for s in self.shares.values()
            ],
        }

    def statistics(self) -> dict[str, Any]:
        return {
            **self._stats,
            "active_connections": len(self.connections),
            "active_sessions": len(self.sessions),
            "listening": list(self.listening),
            "per_connection": [p.statistics() for p in self.processors.values()],
        }


def _dialect_text(d: int) -> str:
    from smbd.server.model import DIALECT_TEXT

    return DIALECT_TEXT.get(d, f"0x{d:04x}")


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


_SIOCGIFADDR = 0x8915


def _host_interfaces() -> list[tuple[int, str, ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """(ifindex, name, address) for each address of the host (Linux)."""
    out: list[tuple[int, str, ipaddress.IPv4Address | ipaddress.IPv6Address]] = []
    try:
        names = socket.if_nameindex()
    except OSError:
        return out
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for index, name in names:
            try:
                req = struct.pack("256s", name.encode()[:15])
                res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, req)
                out.append((index, name, ipaddress.IPv4Address(res[20:24])))
            except OSError:
                continue
    try:
        text = Path("/proc/net/if_inet6").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6:
            try:
                out.append((int(f[1], 16), f[5], ipaddress.IPv6Address(bytes.fromhex(f[0]))))
            except ValueError:
                continue
    return out


def _link_speed(name: str) -> int:
    try:
        mbps = int(Path(f"/sys/class/net/{name}/speed").read_text().strip())
    except (OSError, ValueError):
        mbps = -1
    return mbps * 1_000_000 if mbps > 0 else 1_000_000_000
