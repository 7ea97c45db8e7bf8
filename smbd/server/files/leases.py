"""Oplocks and leases ([MS-SMB2] 3.3.1.4 Lease, 3.3.4.6/3.3.4.7 breaks, 3.3.5.9.8 granting,
3.3.5.22 acknowledgments; [MS-FSA] 2.1.5.17 oplock rules).

Model
-----
* A :class:`Lease` is keyed by (ClientGuid, LeaseKey), belongs to one file and is shared by
  every open that named that key; its state is a subset of R (read), H (handle) and
  W (write) caching. Oplocks are kept per open (``Open.oplock_level``) and mapped to the same
  bits for the break rules: LEVEL_II = R, EXCLUSIVE = RW, BATCH = RWH.
* Granting (CREATE, after the open is registered): at most one writer (W only when no
  other open or lease exists), no H next to an oplock, no R with byte-range locks, and
  the lease combinations R, RH, RW, RWH (anything else is NONE). A known lease is upgraded
  when the request is a superset and no break is in progress.
* Breaking (CREATE of a file with other holders, before the sharing check): a would-be
  sharing violation breaks H ("close your cached handles"), otherwise W ("flush your
  writes"); an overwrite/supersede breaks to NONE (H kept for leases when possible is not
  attempted). Holders of the state being broken must acknowledge; the CREATE goes async
  and waits for every acknowledgement, a close, or the 35 s timer of [MS-SMB2] 3.3.2.1,
  after which the break is applied as if acknowledged. R-only and LEVEL_II breaks need no
  acknowledgement and take effect at once.
* The notification goes out through ``SMBServer.send_unsolicited`` on a connection of the
  lease's client (3.3.4.7); a holder with no live connection is downgraded at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import trio

from smbd.server.files.common import files_of, lookup, session_tree
from smbd.server.files.state import sharing_conflict
from smbd.server.request import Buffer, Handler, Request, Response, SMBError
from smbd.wire import create as wc
from smbd.wire import oplock as wo
from smbd.wire.constants import Capabilities, Command
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.files.opens import FileState, Open
    from smbd.server.files.state import FileServerState

__all__ = [
    "HANDLERS",
    "OPLOCK_BREAK_TIMEOUT",
    "Lease",
    "LeaseManager",
    "handle_oplock_break",
    "install",
]

log = logging.getLogger("smbd.files.leases")

OPLOCK_BREAK_TIMEOUT: Final = 35.0
"""Seconds a break waits for its acknowledgement ([MS-SMB2] 3.3.2.1: 35 s on Windows)."""

R: Final = 0x1
H: Final = 0x2
W: Final = 0x4
RWH: Final = R | W | H
_VALID_LEASE_STATES: Final = frozenset({0, R, R | H, R | W, RWH})

_OPLOCK_TO_LEASE: Final = {
    wc.OplockLevel.NONE: 0,
    wc.OplockLevel.II: R,
    wc.OplockLevel.EXCLUSIVE: R | W,
    wc.OplockLevel.BATCH: RWH,
}

# Opens asking only for these take no part in breaking oplocks / leases.
_SYNCHRONIZE = 0x00100000
_READ_ATTRIBUTES = 0x80
_WRITE_ATTRIBUTES = 0x100
_READ_CONTROL = 0x00020000
_OPLOCK_STAT_MASK: Final = _SYNCHRONIZE | _READ_ATTRIBUTES | _WRITE_ATTRIBUTES
_LEASE_STAT_MASK: Final = _OPLOCK_STAT_MASK | _READ_CONTROL

_OVERWRITING: Final = frozenset(
    {
        wc.CreateDisposition.SUPERSEDE,
        wc.CreateDisposition.OVERWRITE,
        wc.CreateDisposition.OVERWRITE_IF,
    }
)
_ACK_REQUIRED: Final = wo.SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED


def oplock_to_lease(level: int) -> int:
    return _OPLOCK_TO_LEASE.get(level, 0)  # type: ignore[call-overload, no-any-return]


def lease_to_oplock(state: int) -> int:
    if state == RWH:
        return wc.OplockLevel.BATCH
    if state & W:
        return wc.OplockLevel.EXCLUSIVE
    if state & R:
        return wc.OplockLevel.II
    return wc.OplockLevel.NONE


def state_text(state: int) -> str:
    return "".join(c for bit, c in ((R, "R"), (W, "W"), (H, "H")) if state & bit) or "-"


@dataclass(eq=False)
class Lease:
    """[MS-SMB2] 3.3.1.4 Lease."""

    client_guid: bytes
    key: bytes
    file: FileState
    state: int = 0
    version: int = 1
    epoch: int = 0
    parent_key: bytes | None = None
    breaking: bool = False
    breaking_to_requested: int = 0  # what the notification offered
    breaking_to_required: int = 0  # what the opens waiting need
    break_started: float = 0.0
    opens: list[Open] = field(default_factory=list)

    def response(self) -> bytes:
        flags = wc.LeaseFlags.BREAK_IN_PROGRESS if self.breaking else 0
        parent = bytes(16)
        if self.version == 2 and self.parent_key is not None:
            flags |= wc.LeaseFlags.PARENT_LEASE_KEY_SET
            parent = self.parent_key
        return wc.pack_lease(
            wc.Lease(self.key, self.state, flags, 0, parent, self.epoch, self.version)
        )


class FileLeases:
    """What the lease manager keeps on a file: the event waiting CREATEs watch."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        self.changed = trio.Event()

    def wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


@dataclass
class _Break:
    """A break to send once the decision is taken."""

    connection_id: int
    session_id: int
    body: bytes


class LeaseManager:
    """Oplocks and leases of a :class:`FileServerState` (its ``oplocks`` hook)."""

    def __init__(self, files: FileServerState, *, timeout: float = OPLOCK_BREAK_TIMEOUT) -> None:
        self.files = files
        self.timeout = timeout
        self.leases: dict[tuple[bytes, bytes], Lease] = {}
        self.server: Any = None  # the SMBServer, learnt from the first request
        self._stats = {"breaks": 0, "acks": 0, "timeouts": 0, "waits": 0}

    # -- per-file state ---------------------------------------------------------------------

    @staticmethod
    def _fstate(file: FileState) -> FileLeases:
        st = file.lease_state
        if st is None:
            st = file.lease_state = FileLeases()
        assert isinstance(st, FileLeases)
        return st

    def _wake(self, file: FileState) -> None:
        st = file.lease_state
        if isinstance(st, FileLeases):
            st.wake()

    def statistics(self) -> dict[str, Any]:
        return {**self._stats, "leases": len(self.leases)}

    # -- helpers ------------------------------------------------------------------------------

    def _set_lease_state(self, lease: Lease, state: int) -> None:
        lease.state = state
        for o in lease.opens:
            o.lease_state = state

    def _other_holders(
        self, file: FileState, client_guid: bytes, key: bytes | None
    ) -> tuple[list[Lease], list[Open]]:
        leases: list[Lease] = []
        oplocks: list[Open] = []
        for o in file.opens:
            if o.closed:
                continue
            if o.lease_key is not None:
                lease = self.leases.get((o.client_guid, o.lease_key))
                if lease is None or lease in leases:
                    continue
                if key is not None and lease.client_guid == client_guid and lease.key == key:
                    continue  # our own lease never breaks
                leases.append(lease)
            elif o.oplock_level not in (0, wc.OplockLevel.LEASE):
                oplocks.append(o)
        return leases, oplocks

    def _lease_route(self, lease: Lease) -> tuple[int, int] | None:
        """Where a lease break goes ([MS-SMB2] 3.3.4.7): the oldest live connection of the
        lease's client (as Windows does when one client has several), else a connection
        of one of its opens."""
        conns = getattr(self.server, "connections", None)
        if conns is not None and any(
            not o.closed and o.disconnected_at is None for o in lease.opens
        ):
            for cid in sorted(conns):
                c = conns[cid]
                if getattr(c, "closed", False) or c.client_guid != lease.client_guid:
                    continue
                sessions = getattr(c, "sessions", {})
                sid = next(iter(sessions), 0) if sessions else 0
                for o in lease.opens:
                    if o.connection_id == cid:
                        sid = o.session_id
                        break
                return (cid, sid)
        return self._route(lease.opens)

    def _route(self, opens: list[Open]) -> tuple[int, int] | None:
        """A live (connection id, session id) of these opens."""
        conns = getattr(self.server, "connections", None)
        for o in opens:
            if o.closed or o.disconnected_at is not None:
                continue
            if conns is None:
                return (o.connection_id, o.session_id)
            c = conns.get(o.connection_id)
            if c is not None and not getattr(c, "closed", False):
                return (o.connection_id, o.session_id)
        return None

    # -- breaking -------------------------------------------------------------------------------

    def _plan_breaks(
        self,
        file: FileState,
        requester_guid: bytes,
        requester_key: bytes | None,
        access: int,
        sharing_violation: bool,
        overwrite: bool,
        first_attempt: bool,
        now: float,
    ) -> tuple[bool, list[_Break]]:
        """Decide the breaks a new open causes. Returns (must wait, notifications).
        ``sharing_violation`` (or a delete-on-close open) breaks handle caching."""
        delay = False
        out: list[_Break] = []
        delay_mask = H if sharing_violation else W
        leases, oplocks = self._other_holders(file, requester_guid, requester_key)
        lease_stat = not access & ~_LEASE_STAT_MASK
        oplock_stat = not access & ~_OPLOCK_STAT_MASK
        for lease in leases:
            if lease_stat:
                continue
            current = lease.state
            break_to = current & ~delay_mask
            if overwrite:
                break_to &= ~(H | R | W)
            if not current & ~break_to:
                if lease.breaking:
                    delay = True  # a break in progress finishes first
                continue
            if lease.breaking:
                lease.breaking_to_required &= break_to
                if current & delay_mask or not first_attempt:
                    delay = True
                continue
            route = self._lease_route(lease)
            if route is None or not current & (W | H):
                # nobody to tell, or an R-only lease: applied at once
                self._set_lease_state(lease, break_to)
                if route is not None:
                    out.append(self._lease_break(lease, route, current, break_to, 0))
                continue
            lease.breaking = True
            lease.breaking_to_requested = break_to
            lease.breaking_to_required = break_to
            lease.break_started = now
            out.append(self._lease_break(lease, route, current, break_to, _ACK_REQUIRED))
            if current & delay_mask:
                delay = True
        for o in oplocks:
            if oplock_stat and not overwrite:
                continue
            current = oplock_to_lease(o.oplock_level)
            break_to = current & ~delay_mask
            if overwrite:
                break_to &= ~(H | R | W)
            if not current & ~break_to:
                continue
            break_to &= R  # oplocks break to LEVEL_II or NONE only
            new_level = wc.OplockLevel.II if break_to else wc.OplockLevel.NONE
            breaking_to = o.extra.get("oplock_breaking_to")
            if breaking_to is not None:
                o.extra["oplock_breaking_to"] = min(int(breaking_to), int(new_level))
                if current & delay_mask or not first_attempt:
                    delay = True
                continue
            route = self._route([o])
            body = wo.pack_oplock_break(wo.OplockBreak(new_level, o.file_id))
            if o.oplock_level == wc.OplockLevel.II or route is None:
                o.oplock_level = new_level  # LEVEL_II breaks need no acknowledgement
                if route is not None:
                    out.append(_Break(route[0], route[1], body))
                continue
            o.extra["oplock_breaking_to"] = int(new_level)
            o.extra["oplock_break_started"] = now
            out.append(_Break(route[0], route[1], body))
            if current & delay_mask:
                delay = True
        return delay, out

    def _lease_break(
        self,
        lease: Lease,
        route: tuple[int, int],
        current: int,
        new: int,
        flags: int,
        *,
        new_epoch: bool = True,
    ) -> _Break:
        """The notification; a v2 lease's epoch moves on with each new break (not with the
        further steps of a break an acknowledgement continues)."""
        if lease.version == 2 and new_epoch:
            lease.epoch = (lease.epoch + 1) & 0xFFFF
        body = wo.pack_lease_break_notification(
            wo.LeaseBreakNotification(
                lease.epoch if lease.version == 2 else 0, flags, lease.key, current, new
            )
        )
        return _Break(route[0], route[1], body)

    async def _send(self, breaks: list[_Break]) -> None:
        server = self.server
        conns = getattr(server, "connections", None)
        if conns is None:
            return
        for b in breaks:
            conn = conns.get(b.connection_id)
            if conn is None:
                continue
            self._stats["breaks"] += 1
            log.debug("break sent", extra={"conn": b.connection_id, "session": b.session_id})
            try:
                await server.send_unsolicited(
                    conn, Command.OPLOCK_BREAK, [b.body], server.sessions.get(b.session_id)
                )
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.info("break not delivered: %s", exc, extra={"conn": b.connection_id})

    def _expire(self, file: FileState, now: float) -> float:
        """Apply breaks whose acknowledgement timer ran out; return the seconds until the
        next one expires (inf when none is pending)."""
        nearest = math.inf
        changed = False
        for lease in list(self.leases.values()):
            if lease.file is not file or not lease.breaking:
                continue
            left = lease.break_started + self.timeout - now
            if left <= 0:
                # [MS-SMB2] 3.3.2.5: an unacknowledged lease break revokes the lease
                self._stats["timeouts"] += 1
                lease.breaking = False
                self._set_lease_state(lease, 0)
                changed = True
            else:
                nearest = min(nearest, left)
        for o in file.opens:
            to = o.extra.get("oplock_breaking_to")
            if to is None:
                continue
            left = float(o.extra.get("oplock_break_started", now)) + self.timeout - now
            if left <= 0:
                self._stats["timeouts"] += 1
                o.oplock_level = wc.OplockLevel.NONE
                del o.extra["oplock_breaking_to"]
                changed = True
            else:
                nearest = min(nearest, left)
        if changed:
            self._wake(file)
        return nearest

    async def check_open(
        self, req: Request, file: FileState, access: int, share_access: int, disposition: int
    ) -> None:
        """OplockHook.check_open: break what the new open conflicts with and wait for the
        acknowledgements (going async), then return so the CREATE re-runs its sharing
        check against what is left."""
        self.server = req.server
        if file.delete_pending:
            return  # the CREATE fails with DELETE_PENDING; nothing is broken for it
        key: bytes | None = None
        delete_on_close = False
        try:
            cr = wc.parse_create_request(req.body)
            delete_on_close = bool(cr.create_options & wc.CreateOptions.DELETE_ON_CLOSE)
            if cr.requested_oplock_level == wc.OplockLevel.LEASE:
                ctx = cr.context(wc.CTX_REQUEST_LEASE)
                if ctx is not None:
                    key = wc.parse_lease(ctx.data).key
        except ParseError:
            key = None
        overwrite = disposition in _OVERWRITING
        check_access = access
        if overwrite:
            check_access |= 0x10000 if disposition == wc.CreateDisposition.SUPERSEDE else 0x2
        client_guid = req.connection.client_guid
        clock = trio.current_time  # trio's clock: MockClock in tests
        first = True
        while True:
            live = [o for o in file.opens if not o.closed]
            violation = sharing_conflict(
                ((o.granted_access, o.share_access) for o in live), check_access, share_access
            )
            now = clock()
            self._expire(file, now)
            changed = self._fstate(file).changed
            delay, breaks = self._plan_breaks(
                file, client_guid, key, access, violation or delete_on_close, overwrite, first, now
            )
            first = False
            if breaks:
                await self._send(breaks)
            if not delay:
                return
            if not req.is_async:
                await req.go_async()
                self._stats["waits"] += 1
            wait = self._expire(file, clock())
            if wait == math.inf:
                wait = self.timeout
            with trio.move_on_after(wait):
                await changed.wait()

    # -- granting ------------------------------------------------------------------------------

    def grant(
        self, req: Request, open_: Open, requested_oplock: int, lease: Any
    ) -> tuple[int, bytes | None]:
        """OplockHook.grant: the OplockLevel and RqLs response for a registered open.
        A lease key already used for another file is INVALID_PARAMETER."""
        self.server = req.server
        conn = req.connection
        file = open_.file
        if requested_oplock == wc.OplockLevel.LEASE:
            if not isinstance(lease, wc.Lease) or not conn.capabilities & Capabilities.LEASING:
                return wc.OplockLevel.NONE, None
            existing = self.leases.get((conn.client_guid, lease.key))
            if existing is not None and existing.file is not file:
                raise SMBError(NTStatus.INVALID_PARAMETER, "lease key in use for another file")
            if file.is_dir and not conn.capabilities & Capabilities.DIRECTORY_LEASING:
                return wc.OplockLevel.NONE, None
            return wc.OplockLevel.LEASE, self._grant_lease(req, open_, lease, existing)
        if (
            requested_oplock
            not in (wc.OplockLevel.II, wc.OplockLevel.EXCLUSIVE, wc.OplockLevel.BATCH)
            or file.is_dir
        ):
            return wc.OplockLevel.NONE, None
        granted = oplock_to_lease(requested_oplock) & self._allowed(open_, None, None)
        level = lease_to_oplock(granted)
        others = [o for o in file.opens if o is not open_ and not o.closed]
        if any(self._holds_handle_lease(o) for o in others) or any(
            o.oplock_level in (wc.OplockLevel.EXCLUSIVE, wc.OplockLevel.BATCH) for o in others
        ):
            level = wc.OplockLevel.NONE  # no oplock next to a handle lease or an exclusive one
        open_.oplock_level = level
        return level, None

    @staticmethod
    def _is_stat_open(o: Open) -> bool:
        return not o.granted_access & ~_LEASE_STAT_MASK

    def _others(self, open_: Open, guid: bytes | None, key: bytes | None) -> list[Open]:
        """The other live opens of the file that count against caching: not stat opens
        that hold nothing, not opens of the lease (guid, key)."""
        return [
            o
            for o in open_.file.opens
            if o is not open_
            and not o.closed
            and not (self._is_stat_open(o) and o.lease_key is None and not o.oplock_level)
            and not (key is not None and o.lease_key == key and o.client_guid == guid)
        ]

    def _allowed(self, open_: Open, guid: bytes | None, key: bytes | None) -> int:
        """The caching a new or upgraded lease/oplock may have next to the others: one
        writer only, no handle caching next to an oplock, no read caching with byte-range
        locks."""
        allowed = RWH
        others = self._others(open_, guid, key)
        if others:
            allowed &= ~W
        if any(
            o.lease_key is None and o.oplock_level not in (0, wc.OplockLevel.LEASE) for o in others
        ):
            allowed &= ~H
        if getattr(open_.file.lock_state, "locks", None):
            allowed &= ~R
        return allowed

    def _holds_handle_lease(self, o: Open) -> bool:
        if o.lease_key is None:
            return False
        lease = self.leases.get((o.client_guid, o.lease_key))
        return lease is not None and bool(lease.state & H)

    def _grant_lease(
        self, req: Request, open_: Open, req_lease: wc.Lease, existing: Lease | None
    ) -> bytes:
        conn = req.connection
        file = open_.file
        version = req_lease.version if conn.dialect >= 0x0300 else 1
        requested = req_lease.state & RWH
        valid = requested in _VALID_LEASE_STATES
        if file.is_dir:
            requested &= R | H
        allowed = self._allowed(open_, conn.client_guid, req_lease.key)
        if existing is None:
            granted = requested & allowed if valid else 0
            if granted not in _VALID_LEASE_STATES:
                granted = granted & R
            existing = Lease(
                client_guid=conn.client_guid,
                key=req_lease.key,
                file=file,
                state=granted,
                version=version,
                epoch=(req_lease.epoch + 1) & 0xFFFF if version == 2 else 0,
                parent_key=(
                    req_lease.parent_key
                    if req_lease.flags & wc.LeaseFlags.PARENT_LEASE_KEY_SET
                    else None
                ),
            )
            self.leases[(conn.client_guid, req_lease.key)] = existing
        elif (
            valid
            and not existing.breaking
            and requested & ~existing.state
            and not existing.state & ~requested
            and not requested & ~allowed
        ):
            # an upgrade: only to exactly what was asked, and only when it is a strict
            # superset that can be held next to the other opens
            existing.state = requested
            if existing.version == 2:
                existing.epoch = (existing.epoch + 1) & 0xFFFF
        existing.opens.append(open_)
        open_.lease_key = req_lease.key
        open_.oplock_level = wc.OplockLevel.LEASE
        self._set_lease_state(existing, existing.state)
        return existing.response()

    # -- handle caching breaks (rename) ------------------------------------------------------

    async def break_handle_caching(self, req: Request, o: Open) -> None:
        """Before renaming the file of ``o`` ([MS-FSA] 2.1.5.14.11): other leases lose
        handle caching and the rename waits (async) for their acknowledgements or the
        timer, so their holders can close cached handles first."""
        file = o.file
        if len(file.opens) < 2:
            return
        self.server = req.server
        first = True
        while True:
            now = trio.current_time()
            self._expire(file, now)
            changed = self._fstate(file).changed
            breaks: list[_Break] = []
            delay = False
            leases, _ = self._other_holders(file, o.client_guid, o.lease_key)
            for lease in leases:
                if not lease.state & H:
                    if lease.breaking and not first:
                        delay = True
                    continue
                if lease.breaking:
                    lease.breaking_to_required &= ~H
                    delay = True
                    continue
                route = self._lease_route(lease)
                to = lease.state & ~H
                if route is None:
                    self._set_lease_state(lease, to)
                    continue
                lease.breaking = True
                lease.breaking_to_requested = lease.breaking_to_required = to
                lease.break_started = now
                breaks.append(self._lease_break(lease, route, lease.state, to, _ACK_REQUIRED))
                delay = True
            first = False
            if breaks:
                await self._send(breaks)
            if not delay:
                return
            if not req.is_async:
                await req.go_async()
            wait = self._expire(file, trio.current_time())
            with trio.move_on_after(self.timeout if wait == math.inf else wait):
                await changed.wait()

    # -- read caching breaks (WRITE, LOCK, SET_INFO end of file) -----------------------------

    async def break_read_caching(self, req: Request, o: Open) -> None:
        """A write, byte-range lock or size change through ``o``: every other lease loses
        its read (and handle) caching and every other LEVEL_II oplock breaks to NONE
        ([MS-FSA] 2.1.5.17.3). Nothing waits for these acknowledgements."""
        file = o.file
        if len(file.opens) < 2 and o.oplock_level != wc.OplockLevel.II:
            return
        self.server = req.server
        breaks: list[_Break] = []
        leases, oplocks = self._other_holders(file, o.client_guid, o.lease_key)
        oplocks = [x for x in oplocks if x is not o]
        now = trio.current_time()
        for lease in leases:
            if lease.breaking:
                lease.breaking_to_required = 0
                continue
            if not lease.state:
                continue
            route = self._lease_route(lease)
            old = lease.state
            if route is not None and old & (W | H):
                lease.breaking = True
                lease.breaking_to_requested = 0
                lease.breaking_to_required = 0
                lease.break_started = now
                breaks.append(self._lease_break(lease, route, old, 0, _ACK_REQUIRED))
            else:
                self._set_lease_state(lease, 0)
                if route is not None:
                    breaks.append(self._lease_break(lease, route, old, 0, 0))
        if o.lease_key is None and o.oplock_level == wc.OplockLevel.II:
            oplocks.append(o)  # a LEVEL_II holder writing breaks its own oplock too
        for other in oplocks:
            if other.oplock_level != wc.OplockLevel.II:
                continue
            other.oplock_level = wc.OplockLevel.NONE
            route = self._route([other])
            if route is not None:
                body = wo.pack_oplock_break(wo.OplockBreak(wc.OplockLevel.NONE, other.file_id))
                breaks.append(_Break(route[0], route[1], body))
        if breaks:
            await self._send(breaks)

    # -- acknowledgements ------------------------------------------------------------------------

    def ack_lease(self, client_guid: bytes, ack: wo.LeaseBreakAck) -> tuple[Lease, list[_Break]]:
        """[MS-SMB2] 3.3.5.22.2. Returns the lease and, when the opens waiting need less
        than was acknowledged, the next break to send (handle caching goes first, as
        Windows breaks RH -> R -> NONE)."""
        lease = self.leases.get((client_guid, ack.lease_key))
        if lease is None:
            raise SMBError(NTStatus.OBJECT_NAME_NOT_FOUND, "no such lease")
        if not lease.breaking:
            raise SMBError(NTStatus.UNSUCCESSFUL, "lease is not breaking")
        if ack.lease_state & ~lease.breaking_to_requested:
            raise SMBError(NTStatus.REQUEST_NOT_ACCEPTED, "acknowledged more than offered")
        self._stats["acks"] += 1
        self._set_lease_state(lease, ack.lease_state)
        lease.breaking = False
        out: list[_Break] = []
        if lease.state & ~lease.breaking_to_required:
            route = self._lease_route(lease)
            to = lease.breaking_to_required
            if lease.state & H and not to & H:
                to |= lease.state & ~(H | W)
            old = lease.state
            if route is not None and old & (W | H):
                lease.breaking = True
                lease.breaking_to_requested = to
                lease.break_started = trio.current_time()
                out.append(self._lease_break(lease, route, old, to, _ACK_REQUIRED, new_epoch=False))
            else:
                self._set_lease_state(lease, to)
                if route is not None:
                    out.append(self._lease_break(lease, route, old, to, 0, new_epoch=False))
        self._wake(lease.file)
        return lease, out

    def ack_oplock(self, o: Open, level: int) -> int:
        """[MS-SMB2] 3.3.5.22.1. Returns the new oplock level."""
        to = o.extra.get("oplock_breaking_to")
        if to is None:
            raise SMBError(NTStatus.INVALID_OPLOCK_PROTOCOL, "oplock is not breaking")
        if level not in (wc.OplockLevel.NONE, wc.OplockLevel.II):
            raise SMBError(NTStatus.INVALID_PARAMETER, f"oplock level {level:#x}")
        del o.extra["oplock_breaking_to"]
        self._stats["acks"] += 1
        if level > int(to):
            o.oplock_level = wc.OplockLevel.NONE
            self._wake(o.file)
            raise SMBError(NTStatus.INVALID_OPLOCK_PROTOCOL, "acknowledged more than offered")
        o.oplock_level = level
        self._wake(o.file)
        return level

    # -- lifecycle --------------------------------------------------------------------------------

    def on_close(self, o: Open) -> None:
        if o.lease_key is not None:
            tkey = (o.client_guid, o.lease_key)
            lease = self.leases.get(tkey)
            if lease is not None:
                if o in lease.opens:
                    lease.opens.remove(o)
                if not lease.opens:
                    del self.leases[tkey]
        o.extra.pop("oplock_breaking_to", None)
        self._wake(o.file)


# -- OPLOCK_BREAK acknowledgment handler -----------------------------------------------------------


def manager_of(req: Request) -> LeaseManager:
    files = files_of(req)
    if not isinstance(files.oplocks, LeaseManager):
        install(files)
    assert isinstance(files.oplocks, LeaseManager)
    return files.oplocks


async def handle_oplock_break(req: Request) -> Response:
    session_tree(req)
    ack = wo.parse_break_ack(req.body)
    mgr = manager_of(req)
    mgr.server = req.server
    if isinstance(ack, wo.LeaseBreakAck):
        if req.connection.dialect < 0x0210:
            raise SMBError(NTStatus.INVALID_PARAMETER, "lease acknowledgment before SMB 2.1")
        lease, more = mgr.ack_lease(req.connection.client_guid, ack)
        if more:
            await mgr._send(more)
        body: list[Buffer] = [
            wo.pack_lease_break_ack(wo.LeaseBreakAck(0, lease.key, ack.lease_state, 0))
        ]
        return Response(body)
    o = lookup(req, ack.file_id)
    level = mgr.ack_oplock(o, ack.oplock_level)
    return Response([wo.pack_oplock_break(wo.OplockBreak(level, o.file_id))])


def install(files: FileServerState) -> LeaseManager:
    """Install the lease manager as ``files.oplocks`` (idempotent)."""
    if not isinstance(files.oplocks, LeaseManager):
        files.oplocks = LeaseManager(files)
    return files.oplocks


HANDLERS: dict[Command, Handler] = {Command.OPLOCK_BREAK: handle_oplock_break}
