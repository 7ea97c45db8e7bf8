"""SMB2 CHANGE_NOTIFY ([MS-SMB2] 3.3.5.19, [MS-FSA] 2.1.5.11 directory change notification).

The first CHANGE_NOTIFY on a directory open starts a :class:`Watch` on it; from then on the
server's own changes (FILES calls :meth:`NotifyManager.changed` on create, write, rename,
delete and set-info) are collected on the watch, also between requests, and a request
completes as soon as something is there. Requests go async while they wait.

* Entries are [MS-FSCC] 2.7.1 FILE_NOTIFY_INFORMATION, names relative to the watched
  directory; WATCH_TREE extends the watch to every directory below.
* What does not fit the request's OutputBufferLength (or the first request's, which
  stays the watch's limit) -- or more than a watch may keep -- is answered with
  STATUS_NOTIFY_ENUM_DIR and no entries ("enumerate the directory"). A completion filter
  of 0 is accepted and never completes (CANCEL or close end it).
* CANCEL answers CANCELLED; closing the open answers its waiting requests with
  STATUS_NOTIFY_CLEANUP; the directory becoming delete-pending with DELETE_PENDING.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Final

import trio

from smbd.backend import Components
from smbd.backend.paths import STREAMS_DIR
from smbd.server.files.common import FILE_READ_DATA, files_of, lookup, session_tree
from smbd.server.request import Handler, Request, Response, SMBError
from smbd.wire import notify as wn
from smbd.wire.constants import Command
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.files.opens import Open
    from smbd.server.files.state import FileServerState

__all__ = ["HANDLERS", "NotifyManager", "Watch", "handle_change_notify", "install"]

log = logging.getLogger("smbd.files.notify")

MAX_BUFFERED_BYTES: Final = 64 * 1024
"""What a watch keeps between requests at most; beyond it the next request gets
NOTIFY_ENUM_DIR (bounds the memory a client's watches can pin)."""
_ENTRY_OVERHEAD: Final = 12 + 3  # FILE_NOTIFY_INFORMATION header and worst-case padding


class Watch:
    """A directory open's change notification state ([MS-FSA] 2.1.1.5 ChangeNotifyList)."""

    __slots__ = (
        "changed",
        "entries",
        "filter",
        "max_output",
        "open",
        "overflow",
        "pending_bytes",
        "tree",
        "waiters",
    )

    def __init__(self, o: Open, filter_: int, tree: bool, max_output: int) -> None:
        self.open = o
        self.filter = filter_
        self.tree = tree
        self.max_output = max_output  # the first request's OutputBufferLength holds
        self.entries: list[wn.NotifyEntry] = []
        self.pending_bytes = 0
        self.overflow = False
        self.changed = trio.Event()
        # the waiting requests, oldest first: changes go to the oldest, as on Windows
        self.waiters: deque[object] = deque()

    def wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def add(self, entry: wn.NotifyEntry) -> None:
        if self.overflow:
            return
        size = _ENTRY_OVERHEAD + 2 * len(entry.name)
        if self.pending_bytes + size > MAX_BUFFERED_BYTES:
            self.overflow = True
            self.entries.clear()
            self.pending_bytes = 0
        else:
            self.entries.append(entry)
            self.pending_bytes += size
        self.wake()

    def take(self) -> tuple[list[wn.NotifyEntry], bool]:
        entries, overflow = self.entries, self.overflow
        self.entries, self.overflow, self.pending_bytes = [], False, 0
        return entries, overflow


def _fold(components: Components) -> tuple[str, ...]:
    return tuple(c.casefold() for c in components)


class NotifyManager:
    """Change notification for a :class:`FileServerState` (its ``notify`` hook)."""

    def __init__(self, files: FileServerState) -> None:
        self.files = files
        self.watches: dict[int, Watch] = {}  # by the directory open's volatile id
        self._stats = {"events": 0, "completed": 0, "enum_dir": 0}

    def statistics(self) -> dict[str, Any]:
        return {**self._stats, "watches": len(self.watches)}

    def watch_for(self, o: Open, filter_: int, tree: bool, max_output: int) -> Watch:
        w = self.watches.get(o.volatile_id)
        if w is None or w.open is not o:
            # the first request's filter and scope stay until the open is closed, as on
            # Windows (smbtorture smb2.notify.mask-change)
            w = self.watches[o.volatile_id] = Watch(o, filter_, tree, max_output)
        return w

    # -- the NotifyHook FILES calls ---------------------------------------------------------

    def changed(
        self, share: str, components: Components, action: int, filter_: int, *, unless: int = 0
    ) -> None:
        """Report ``action`` on ``components`` to the watches whose filter has a bit of
        ``filter_`` and none of ``unless``."""
        if not self.watches or not components or components[0] == STREAMS_DIR:
            return  # named streams are not entries of any directory
        self._stats["events"] += 1
        path = _fold(components)
        for w in list(self.watches.values()):
            o = w.open
            if o.closed or not w.filter & filter_ or w.filter & unless:
                continue
            if o.file.runtime.name.casefold() != share.casefold():
                continue
            base = _fold(o.file.components)
            n = len(base)
            if len(path) <= n or path[:n] != base:
                continue
            if len(path) > n + 1 and not w.tree:
                continue
            w.add(wn.NotifyEntry(action, "\\".join(components[n:])))

    def on_close(self, o: Open) -> None:
        w = self.watches.pop(o.volatile_id, None)
        if w is not None and w.open is o:
            w.wake()
        # a close may leave the watched directory delete-pending: let its watches look
        for other in self.watches.values():
            if other.open.file is o.file:
                other.wake()


def manager_of(req: Request) -> NotifyManager:
    files = files_of(req)
    if not isinstance(files.notify, NotifyManager):
        install(files)
    assert isinstance(files.notify, NotifyManager)
    return files.notify


def _enum_dir() -> Response:
    return Response(wn.pack_change_notify_response(b""), NTStatus.NOTIFY_ENUM_DIR)


async def handle_change_notify(req: Request) -> Response:
    session_tree(req)
    r = wn.parse_change_notify_request(req.body)
    o = lookup(req, r.file_id)
    if not o.is_dir:
        raise SMBError(NTStatus.INVALID_PARAMETER, "CHANGE_NOTIFY on a file")
    if not o.granted_access & FILE_READ_DATA:  # FILE_LIST_DIRECTORY
        raise SMBError(NTStatus.ACCESS_DENIED, "CHANGE_NOTIFY needs FILE_LIST_DIRECTORY")
    if r.output_buffer_length > req.connection.max_transact_size:
        raise SMBError(NTStatus.INVALID_PARAMETER, "OutputBufferLength beyond MaxTransactSize")
    mgr = manager_of(req)
    w = mgr.watch_for(o, r.completion_filter, r.watch_tree, r.output_buffer_length)
    o.file.runtime.ops += 1
    me = object()
    w.waiters.append(me)
    try:
        while not ((w.entries or w.overflow) and w.waiters[0] is me):
            if o.closed:
                return Response(wn.pack_change_notify_response(b""), NTStatus.NOTIFY_CLEANUP)
            if o.file.delete_pending:
                raise SMBError(NTStatus.DELETE_PENDING, "the watched directory is being deleted")
            if not req.is_async:
                await req.go_async()
            changed = w.changed
            ready = (w.entries or w.overflow) and w.waiters[0] is me
            if ready or o.closed or o.file.delete_pending:
                continue
            await changed.wait()
        entries, overflow = w.take()
    finally:
        w.waiters.remove(me)
        if w.waiters and (w.entries or w.overflow):
            w.wake()  # a request that left without taking them hands them on
    mgr._stats["completed"] += 1
    if overflow:
        mgr._stats["enum_dir"] += 1
        return _enum_dir()
    out = wn.encode_notify_entries(entries)
    if len(out) > min(r.output_buffer_length, w.max_output):
        # as Windows does, the first request's buffer size stays the watch's limit
        mgr._stats["enum_dir"] += 1
        return _enum_dir()
    return Response(wn.pack_change_notify_response(out))


def install(files: FileServerState) -> NotifyManager:
    """Install the notify manager as ``files.notify`` (idempotent)."""
    if not isinstance(files.notify, NotifyManager):
        files.notify = NotifyManager(files)
    return files.notify


HANDLERS: dict[Command, Handler] = {Command.CHANGE_NOTIFY: handle_change_notify}
