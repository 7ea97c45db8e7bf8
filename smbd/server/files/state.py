"""FileServerState: the global open table, per-file share-mode arbitration, delete-on-close
and the per-share runtime (backend + counters).

The arbitration and table logic is sans-IO (:func:`sharing_conflict` is a pure function,
property-tested); the only I/O is closing fds and removing delete-on-close files, done by
:meth:`FileServerState.finish_close_sync` -- in a worker thread from the CLOSE handler,
inline from the synchronous lifecycle hooks the core calls while tearing down.

Hooks for the phase-2 managers (leases/oplocks, byte-range locks, change notify) are the
three optional attributes ``oplocks``, ``locks`` and ``notify`` (see the Protocols below).
"""

from __future__ import annotations

import importlib
import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import trio

from smbd.backend import (
    BackendError,
    Components,
    FileHandle,
    PosixShare,
    join_components,
)
from smbd.config import ServerConfig, ShareConfig
from smbd.server.files.opens import FileState, Open
from smbd.server.request import SMBError
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.model import Connection, Session, TreeConnect
    from smbd.server.request import Request

__all__ = [
    "DATA_ACCESS",
    "CloseWork",
    "FileServerState",
    "LockHook",
    "NotifyHook",
    "OplockHook",
    "ShareRuntime",
    "sharing_conflict",
]

log = logging.getLogger("smbd.files")

# Access bits ([MS-SMB2] 2.2.13.1) the arbitration looks at.
FILE_READ_DATA = 0x0001
FILE_WRITE_DATA = 0x0002
FILE_APPEND_DATA = 0x0004
FILE_EXECUTE = 0x0020
DELETE = 0x00010000
DATA_ACCESS = FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_EXECUTE | DELETE

SHARE_READ = 0x1
SHARE_WRITE = 0x2
SHARE_DELETE = 0x4

MAX_OPENS_PER_SESSION = 16384
DEFAULT_DURABLE_TIMEOUT_MS = 60_000


def sharing_conflict(existing: Iterable[tuple[int, int]], access: int, share_access: int) -> bool:
    """[MS-FSA] 2.1.5.1.2 share-mode check: would an open asking for ``access`` with
    ``share_access`` conflict with the ``(granted_access, share_access)`` of the opens a
    file already has?

    Opens that ask for none of read, write, append, execute or delete take no part, in
    either direction (an attributes-only open neither blocks nor is blocked).
    """
    if not access & DATA_ACCESS:
        return False
    for a, s in existing:
        if not a & DATA_ACCESS:
            continue
        if (
            (a & (FILE_READ_DATA | FILE_EXECUTE) and not share_access & SHARE_READ)
            or (a & (FILE_WRITE_DATA | FILE_APPEND_DATA) and not share_access & SHARE_WRITE)
            or (a & DELETE and not share_access & SHARE_DELETE)
            or (access & (FILE_READ_DATA | FILE_EXECUTE) and not s & SHARE_READ)
            or (access & (FILE_WRITE_DATA | FILE_APPEND_DATA) and not s & SHARE_WRITE)
            or (access & DELETE and not s & SHARE_DELETE)
        ):
            return True
    return False


# -- hooks the phase-2 managers implement ----------------------------------------------------


class OplockHook(Protocol):
    """Leases and oplocks (smbd.server.files.leases)."""

    async def check_open(
        self, req: Request, file: FileState, access: int, share_access: int, disposition: int
    ) -> None:
        """Before the sharing check of a CREATE on an existing file: break what conflicts
        (handle caching first, [MS-SMB2] 3.3.5.9 / [MS-FSA] 2.1.4.12) and wait for the
        acknowledgements or the timeout. May go async (``req.go_async()``)."""
        ...

    def grant(
        self, req: Request, open_: Open, requested_oplock: int, lease: Any
    ) -> tuple[int, bytes | None]:
        """After the open is registered: (OplockLevel to return, RqLs response data or None).
        ``lease`` is the parsed smbd.wire.create.Lease or None."""
        ...

    def on_close(self, open_: Open) -> None: ...

    async def break_handle_caching(self, req: Request, open_: Open) -> None:
        """Before a rename through ``open_``: other leases lose handle caching; waits for
        their acknowledgements (may go async)."""
        ...

    async def break_read_caching(self, req: Request, open_: Open) -> None:
        """Before a write, byte-range lock or size change through ``open_``: other leases
        lose read caching, other LEVEL_II oplocks break to NONE (no waiting)."""
        ...


class LockHook(Protocol):
    """Byte-range locks (smbd.server.files.locks)."""

    def on_close(self, open_: Open) -> None:
        """Release the open's locks and wake waiters."""
        ...

    def check_io(self, open_: Open, offset: int, length: int, write: bool) -> bool:
        """True when READ/WRITE of that range conflicts with another open's lock."""
        ...


class NotifyHook(Protocol):
    """CHANGE_NOTIFY (smbd.server.files.notify)."""

    def changed(
        self, share: str, components: Components, action: int, filter_: int, *, unless: int = 0
    ) -> None:
        """``action`` is FILE_ACTION_* ([MS-FSCC] 2.7.1), ``filter_`` the FILE_NOTIFY_CHANGE_*
        bits the change matches."""
        ...

    def on_close(self, open_: Open) -> None:
        """Complete the open's pending CHANGE_NOTIFY requests with NOTIFY_CLEANUP."""
        ...


# -- shares ------------------------------------------------------------------------------------


class ShareRuntime:
    """A share while the server runs: its backend and the counters ``vmstor status`` shows."""

    def __init__(self, config: ShareConfig, limiter: trio.CapacityLimiter) -> None:
        self.config = config
        self.name = config.name
        self.backend = PosixShare(config.path, read_only=config.read_only, limiter=limiter)
        self.bytes_read = 0
        self.bytes_written = 0
        self.ops = 0

    @property
    def read_only(self) -> bool:
        return self.config.read_only

    def statistics(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.config.path),
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "ops": self.ops,
        }


@dataclass(slots=True)
class CloseWork:
    """The I/O one close leaves to do: close the fd, and remove the file when this was the
    last open of a delete-pending file."""

    open: Open
    unlink: bool


class FileServerState:
    """Everything the file handlers share, global to the server ([MS-SMB2] 3.3.1.5
    GlobalOpenTable)."""

    def __init__(
        self,
        config: ServerConfig,
        shares: dict[str, ShareConfig],
        *,
        clock: Callable[[], float],
        rng: Callable[[int], bytes],
        logger: logging.Logger | None = None,
        io_threads: int = 16,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng
        self.log = logger or log
        self.limiter = trio.CapacityLimiter(io_threads)
        self._share_configs: dict[str, ShareConfig] = {}
        self._runtimes: dict[str, ShareRuntime] = {}
        self.update_shares(shares)
        self.opens: dict[int, Open] = {}  # by FileId.Volatile
        self.by_persistent: dict[int, Open] = {}
        self.files: dict[tuple[int, int], FileState] = {}
        self._next_volatile = itertools.count(int.from_bytes(rng(2), "little") << 16 | 1)
        self._next_persistent = itertools.count(int.from_bytes(rng(4), "little") << 24 | 1)
        self._per_session: dict[int, int] = {}
        self.disconnected: set[Open] = set()  # durable opens waiting for a reconnect
        self.oplocks: OplockHook | None = None
        self.locks: LockHook | None = None
        self.notify: NotifyHook | None = None
        self._install_managers()

    def _install_managers(self) -> None:
        """The phase-2 managers (leases, byte-range locks, change notify) install themselves
        as the hooks above."""
        for name in ("leases", "locks", "notify"):
            try:
                mod = importlib.import_module(f"smbd.server.files.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"smbd.server.files.{name}":
                    raise
                continue
            mod.install(self)

    # -- shares --------------------------------------------------------------------------

    def update_shares(self, shares: dict[str, ShareConfig]) -> None:
        self._share_configs = {name.lower(): cfg for name, cfg in shares.items()}

    def runtime(self, share: ShareConfig) -> ShareRuntime:
        """The runtime of a share, built on first use (and rebuilt when its path changes)."""
        key = share.name.lower()
        rt = self._runtimes.get(key)
        if rt is None or rt.config.path != share.path or rt.config.read_only != share.read_only:
            try:
                rt = ShareRuntime(share, self.limiter)
            except BackendError as exc:
                self.log.error("share %s: %s", share.name, exc, extra={"share": share.name})
                raise SMBError(NTStatus.BAD_NETWORK_NAME, str(exc)) from exc
            self._runtimes[key] = rt
        return rt

    def share_statistics(self) -> list[dict[str, Any]]:
        out = []
        for key, cfg in sorted(self._share_configs.items()):
            rt = self._runtimes.get(key)
            if rt is not None:
                out.append(rt.statistics())
            else:
                out.append(
                    {
                        "name": cfg.name,
                        "path": str(cfg.path),
                        "bytes_read": 0,
                        "bytes_written": 0,
                        "ops": 0,
                    }
                )
        return out

    def open_list(self) -> list[dict[str, Any]]:
        return [
            {
                "session": o.session_id,
                "share": o.file.runtime.name,
                "path": o.file.path,
                "durable": o.is_durable,
                "lease": _lease_text(o.lease_state) if o.lease_key is not None else "",
            }
            for o in self.opens.values()
        ]

    def statistics(self) -> dict[str, Any]:
        return {
            "opens": len(self.opens),
            "files": len(self.files),
            "io_threads_busy": self.limiter.borrowed_tokens,
            "disconnected_durable": sum(
                1 for o in self.opens.values() if o.disconnected_at is not None
            ),
        }

    # -- the open table ------------------------------------------------------------------

    def file_for(self, runtime: ShareRuntime, handle: FileHandle) -> FileState:
        """The FileState of a just-opened handle (new or shared with other opens)."""
        fs = self.files.get(handle.key)
        if fs is None:
            fs = FileState(handle.key, runtime, handle.components, handle.is_dir)
            self.files[handle.key] = fs
        return fs

    def check_sharing(self, file: FileState, access: int, share_access: int) -> None:
        """DELETE_PENDING and SHARING_VIOLATION checks for a new open of ``file``."""
        if file.delete_pending:
            raise SMBError(NTStatus.DELETE_PENDING, file.path)
        live = [o for o in file.opens if not o.closed]
        if sharing_conflict(
            ((o.granted_access, o.share_access) for o in live), access, share_access
        ):
            raise SMBError(NTStatus.SHARING_VIOLATION, file.path)

    def add_open(
        self,
        *,
        file: FileState,
        handle: FileHandle,
        session: Session,
        tree: TreeConnect,
        connection: Connection,
        granted_access: int,
        share_access: int,
        create_options: int,
        create_disposition: int,
    ) -> Open:
        count = self._per_session.get(session.session_id, 0)
        if count >= MAX_OPENS_PER_SESSION:
            raise SMBError(NTStatus.INSUFFICIENT_RESOURCES, "too many opens in this session")
        volatile = next(self._next_volatile) & 0xFFFF_FFFF_FFFF_FFFE
        while volatile in self.opens or volatile == 0:
            volatile = next(self._next_volatile) & 0xFFFF_FFFF_FFFF_FFFE
        persistent = next(self._next_persistent) & 0xFFFF_FFFF_FFFF_FFFE
        while persistent in self.by_persistent or persistent == 0:
            persistent = next(self._next_persistent) & 0xFFFF_FFFF_FFFF_FFFE
        o = Open(
            persistent_id=persistent,
            volatile_id=volatile,
            session_id=session.session_id,
            tree_id=tree.tree_id,
            connection_id=connection.conn_id,
            file=file,
            handle=handle,
            granted_access=granted_access,
            share_access=share_access,
            create_options=create_options,
            create_disposition=create_disposition,
            user=session.user,
            client_guid=connection.client_guid,
            delete_on_close=bool(create_options & 0x1000),
        )
        file.opens.append(o)
        self.opens[volatile] = o
        self.by_persistent[persistent] = o
        self._per_session[session.session_id] = count + 1
        return o

    def lookup(self, req: Request, persistent: int, volatile: int) -> Open:
        """The Open a request's FileId names ([MS-SMB2] 3.3.5.x: unknown, closed, or of
        another session or tree -> FILE_CLOSED)."""
        persistent, volatile = req.file_id(persistent, volatile)
        o = self.opens.get(volatile)
        if (
            o is None
            or o.closed
            or o.persistent_id != persistent
            or o.disconnected_at is not None
            or req.session is None
            or o.session_id != req.session.session_id
            or req.tree is None
            or o.tree_id != req.tree.tree_id
        ):
            raise SMBError(NTStatus.FILE_CLOSED, f"no open {persistent:#x}/{volatile:#x}")
        return o

    def detach(self, o: Open) -> CloseWork:
        """Take an open out of the tables (pure state). The delete-on-close flag of the open
        makes the file delete-pending; the last open of a delete-pending file removes it."""
        o.closed = True
        self.opens.pop(o.volatile_id, None)
        if self.by_persistent.get(o.persistent_id) is o:
            del self.by_persistent[o.persistent_id]
        if o.disconnected_at is None:
            self._count_session(o.session_id, -1)
        self.disconnected.discard(o)
        for hook in (self.oplocks, self.locks, self.notify):
            if hook is not None:
                try:
                    hook.on_close(o)
                except Exception:
                    self.log.exception("close hook failed", extra={"open": o.volatile_id})
        f = o.file
        if o.delete_on_close:
            f.delete_pending = True
        if o in f.opens:
            f.opens.remove(o)
        unlink = False
        if not f.opens:
            unlink = f.delete_pending
            if self.files.get(f.key) is f:
                del self.files[f.key]
        return CloseWork(o, unlink)

    def finish_close_sync(self, work: CloseWork) -> bool:
        """The I/O part of a close (worker thread or inline); True when the file was
        removed. Never raises: a close always closes. It touches no trio object, so it is
        safe in a thread; the caller reports the removal (:meth:`_removed`) on the loop."""
        o = work.open
        backend = o.file.runtime.backend
        removed = False
        if work.unlink:
            try:
                o.handle.components = o.file.components
                backend.unlink_sync(o.handle)
                removed = True
            except BackendError as exc:
                self.log.warning(
                    "delete on close of %s failed: %s",
                    o.file.path,
                    exc,
                    extra={"open": o.volatile_id},
                )
        try:
            backend.close_sync(o.handle)
        except OSError as exc:
            self.log.warning("close failed: %s", exc, extra={"open": o.volatile_id})
        return removed

    def _removed(self, o: Open) -> None:
        if self.notify is not None:
            self.notify.changed(o.file.runtime.name, o.file.components, 2, 0x2 if o.is_dir else 0x1)

    async def close(self, o: Open) -> None:
        work = self.detach(o)
        backend = o.file.runtime.backend
        # unlinking may free a large file's extents: that goes to a thread
        inline = not work.unlink and backend.cheap_to_close(o.handle)
        run = backend.run_meta if inline else backend.run
        if await run(self.finish_close_sync, work):
            self._removed(o)

    def renamed(self, file: FileState, components: Components) -> None:
        file.components = components
        for o in file.opens:
            o.handle.components = components

    def has_open_below(self, runtime: ShareRuntime, prefix: Components) -> bool:
        """Whether any open file lives under directory ``prefix`` (a directory with open
        files below it cannot be renamed, as on Windows)."""
        n = len(prefix)
        return any(
            f.runtime is runtime and len(f.components) > n and f.components[:n] == prefix
            for f in self.files.values()
        )

    def parent_open_for_delete(self, runtime: ShareRuntime, components: Components) -> bool:
        """Whether the directory holding ``components`` has an open with DELETE access:
        Windows then refuses to rename the entry with SHARING_VIOLATION (the parent could
        be deleted or renamed under it), before breaking any oplock."""
        parent = components[:-1]
        return any(
            f.runtime is runtime
            and f.is_dir
            and f.components == parent
            and any(not o.closed and o.granted_access & DELETE for o in f.opens)
            for f in self.files.values()
        )

    # -- lifecycle hooks the core calls ----------------------------------------------------

    def _close_now(self, opens: Sequence[Open]) -> None:
        for o in opens:
            if self.finish_close_sync(self.detach(o)):
                self._removed(o)

    def close_tree(self, tree: TreeConnect) -> None:
        """TREE_DISCONNECT (and a tree going away with its session): close its opens,
        durable ones included ([MS-SMB2] 3.3.5.8)."""
        sid = tree.session.session_id
        self._close_now(
            [o for o in self.opens.values() if o.session_id == sid and o.tree_id == tree.tree_id]
        )

    def close_session(self, session: Session) -> None:
        """A session ends (LOGOFF, expiry, its last channel gone): non-durable opens close;
        durable ones are kept, disconnected, for a reconnect until their timeout."""
        self._disconnect([o for o in self.opens.values() if o.session_id == session.session_id])

    def connection_lost(self, connection: Connection) -> None:
        """A transport connection dropped. Opens of a session that still has another
        channel move to that channel (multichannel: losing one NIC loses no handle); the
        others are handled as in :meth:`close_session`."""
        survivors: dict[int, int] = {}
        for session in list(getattr(connection, "sessions", {}).values()):
            for ch in session.channels:
                other = ch.connection
                if other is not connection and not getattr(other, "closed", False):
                    survivors[session.session_id] = other.conn_id
                    break
        victims = []
        for o in self.opens.values():
            if o.connection_id != connection.conn_id or o.disconnected_at is not None:
                continue
            if o.session_id in survivors:
                o.connection_id = survivors[o.session_id]
            else:
                victims.append(o)
        self._disconnect(victims)

    def _disconnect(self, opens: Sequence[Open]) -> None:
        now = self.clock()
        closing = []
        for o in opens:
            if o.is_durable and o.disconnected_at is None:
                o.disconnected_at = now
                self.disconnected.add(o)
                self._count_session(o.session_id, -1)
            elif not o.is_durable:
                closing.append(o)
        self._close_now(closing)

    def reattach(
        self, o: Open, *, session: Session, tree: TreeConnect, connection: Connection
    ) -> None:
        """A durable open reclaimed by a reconnect (DHnC / DH2C) joins its new session."""
        self.disconnected.discard(o)
        o.disconnected_at = None
        o.session_id = session.session_id
        o.tree_id = tree.tree_id
        o.connection_id = connection.conn_id
        o.client_guid = connection.client_guid
        self._count_session(session.session_id, +1)

    def _count_session(self, session_id: int, delta: int) -> None:
        n = self._per_session.get(session_id, 0) + delta
        if n > 0:
            self._per_session[session_id] = n
        else:
            self._per_session.pop(session_id, None)

    def scavenge(self) -> int:
        """Close disconnected durable opens whose timeout passed; returns how many."""
        if not self.disconnected:
            return 0
        now = self.clock()
        expired = [
            o
            for o in self.disconnected
            if o.disconnected_at is not None
            and now - o.disconnected_at
            >= (o.durable_timeout_ms or DEFAULT_DURABLE_TIMEOUT_MS) / 1000
        ]
        self._close_now(expired)
        return len(expired)

    def close_all(self) -> None:
        """Server shutdown."""
        self._close_now(list(self.opens.values()))
        for rt in self._runtimes.values():
            rt.backend.close()
        self._runtimes.clear()


def _lease_text(state: int) -> str:
    return "".join(c for bit, c in ((1, "R"), (4, "W"), (2, "H")) if state & bit) or "-"


def path_text(components: Components) -> str:
    return join_components(components)
