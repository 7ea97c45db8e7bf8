"""The iSCSI target server on trio: portals, sessions, and the driver of the sans-IO cores.

Each accepted TCP connection runs the login (:mod:`scsi.iscsi.login`) under a timeout, then
the full feature phase (:mod:`scsi.iscsi.connection`): one reader task feeds PDUs to the core.
Plain in-order READs at the head of the receive buffer take the fast path
(:meth:`scsi.iscsi.connection.Connection.fast_read`: no task, the Data-In with its status built
in place around the data); other reads the page cache holds finish right there
(:meth:`scsi.target.Target.execute_now`); larger reads the page cache holds are sent from the
LUN's file with ``sendfile`` when no data digest was negotiated
(:meth:`scsi.target.Target.read_span`, :class:`scsi.iscsi.framing.FileSpan`); the remaining
commands run on per-session workers that await :meth:`scsi.target.Target.execute`. Every
piece of output is sent under one lock in the order the core queued it (which is StatSN
order), the replies of one receive batch in one ``writev`` before the reader waits for more.
PDUs are received into buffers sized from their own length fields; payloads stay memoryview
slices down to the backend.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import trio

from scsi.iscsi import pdu
from scsi.iscsi.chap import ChapSecrets
from scsi.iscsi.connection import (
    FAST_DONE,
    FAST_FULL,
    Close,
    Connection,
    Execute,
    Limits,
    Logout,
    ManageTasks,
    Task,
)
from scsi.iscsi.errors import LoginStatus, PduError
from scsi.iscsi.framing import FileSpan, Framer, Received
from scsi.iscsi.login import Login, LoginResult
from scsi.iscsi.negotiation import TargetLimits
from scsi.iscsi.pdu import TmfFunction, TmfResponse
from scsi.nexus import Nexus
from scsi.sense import SenseKey, build_fixed_sense
from scsi.target import Target

log = logging.getLogger("vmstor.iscsi")

# What ends a connection from the peer's side.
_GONE = (EOFError, OSError, trio.BrokenResourceError, trio.ClosedResourceError)

REPORTED_LUNS_DATA_HAS_CHANGED = (0x3F, 0x0E)
LOGIN_MAX_DATA = 8192  # RFC 7143 13.12: MaxRecvDataSegmentLength default during login
IOV_MAX = 1024
INLINE_READ_MAX = 64 * 1024  # reads up to this size may complete on the receive path
SYNC_SEND_MAX = 256 * 1024  # sends up to this size try writev before trio's sendmsg
_EMPTY = memoryview(b"")


@dataclass(frozen=True)
class Portal:
    """A network portal = one target port (RFC 7143 2.2; SPC-4 relative target port).

    ``tag`` is the Target Portal Group Tag; ``rtpi`` the relative target port identifier;
    ``tpg`` the ALUA target port group holding that port.
    """

    host: str
    port: int
    tag: int
    rtpi: int
    tpg: int = 1

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port},{self.tag}"


class Access(Protocol):
    """Who may log in where (zoning) and with which CHAP secrets."""

    def authorize(self, initiator: str, target: str, portal_group_tag: int) -> bool: ...

    def chap_secrets(self, target: str | None) -> ChapSecrets | None: ...


class OpenAccess:
    """Everyone may log in, no CHAP."""

    def authorize(self, initiator: str, target: str, portal_group_tag: int) -> bool:
        return True

    def chap_secrets(self, target: str | None) -> ChapSecrets | None:
        return None


@dataclass
class Settings:
    limits: TargetLimits = field(default_factory=TargetLimits)
    session_limits: Limits = field(default_factory=Limits)
    login_timeout: float = 15.0
    nop_interval: float = 30.0  # 0 disables target-initiated NOP-In pings
    max_sessions: int = 256


@dataclass(eq=False)
class Session:
    tsih: int
    login: LoginResult
    portal: Portal
    peer: str
    conn: Connection
    nexus: Nexus | None
    cancel: trio.CancelScope
    wake: trio.Event = field(default_factory=trio.Event)  # output is waiting for the writer
    aen_pending: bool = False  # an Async Message for REPORTED LUNS DATA HAS CHANGED is queued
    scopes: dict[int, trio.CancelScope] = field(default_factory=dict)
    finished: trio.Event = field(default_factory=trio.Event)  # set when any task ends
    jobs: list[Task] = field(default_factory=list)  # ready, waiting for a worker
    work: trio.Event = field(default_factory=trio.Event)  # jobs is not empty
    workers: int = 0
    idle: int = 0

    def info(self) -> dict[str, Any]:
        p = self.login.params
        return {
            "tsih": self.tsih,
            "initiator": self.login.initiator_name,
            "isid": self.login.isid.hex(),
            "target": self.login.target_name or "(discovery)",
            "portal": self.portal.address,
            "peer": self.peer,
            "digests": f"{'CRC32C' if p.header_digest else 'None'}/"
            f"{'CRC32C' if p.data_digest else 'None'}",
            **self.conn.statistics(),
        }


class IscsiServer:
    """One iSCSI target (``target.name``) reachable through ``portals``."""

    def __init__(
        self,
        target: Target,
        portals: Sequence[Portal],
        *,
        access: Access | None = None,
        settings: Settings | None = None,
        rng: Callable[[int], bytes] = secrets.token_bytes,
        logger: logging.Logger | None = None,
    ) -> None:
        self.target = target
        self.portals = list(portals)
        self.access: Access = access or OpenAccess()
        self.settings = settings or Settings()
        self.rng = rng
        self.log = logger or log
        self.sessions: dict[int, Session] = {}
        self.bound: list[tuple[Portal, tuple[str, int]]] = []
        self._next_tsih = 1
        self._stats = {"logins": 0, "login_failures": 0, "connections": 0}

    # ---------------------------------------------------------------------------- public

    async def serve(self, *, task_status: trio.TaskStatus[list[tuple[str, int]]]) -> None:
        """Listen on every portal; ``task_status.started`` gets the bound addresses (a port
        0 in the config becomes the port the kernel chose)."""
        async with trio.open_nursery() as nursery:
            listeners: list[tuple[Portal, trio.SocketListener]] = []
            for portal in self.portals:
                found = await trio.open_tcp_listeners(portal.port, host=portal.host)
                for lst in found:
                    addr = lst.socket.getsockname()
                    bound = Portal(portal.host, addr[1], portal.tag, portal.rtpi, portal.tpg)
                    listeners.append((bound, lst))
                    self.bound.append((bound, (addr[0], addr[1])))
            self.portals = [p for p, _ in listeners]
            try:
                for portal, lst in listeners:
                    nursery.start_soon(self._accept_loop, lst, portal)
                self.log.info(
                    "iSCSI target %s on %s",
                    self.target.name,
                    ", ".join(p.address for p in self.portals),
                )
                task_status.started([addr for _, addr in self.bound])
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    for _, lst in listeners:
                        await lst.aclose()

    def statistics(self) -> dict[str, Any]:
        return {
            **self._stats,
            "sessions": len(self.sessions),
            "target": self.target.statistics(),
        }

    def session_info(self) -> list[dict[str, Any]]:
        return [s.info() for s in self.sessions.values()]

    def drop_sessions(self, predicate: Callable[[str, int], bool]) -> int:
        """End the sessions for which ``predicate(initiator, portal_tag)`` is true (for
        example an initiator whose zoning was removed). Returns how many."""
        n = 0
        for s in list(self.sessions.values()):
            if s.login.target_name is not None and predicate(s.login.initiator_name, s.portal.tag):
                s.cancel.cancel()
                n += 1
        return n

    def unit_attention(self, nexus_key: tuple[str, int], lun: int, code: tuple[int, int]) -> None:
        """Listener for the target's unit attentions: REPORTED LUNS DATA HAS CHANGED is also
        announced with an Async Message, event 0 (RFC 7143 11.9.1), once per burst of
        changes, so that initiators rescan at once (open-iscsi does)."""
        if code != REPORTED_LUNS_DATA_HAS_CHANGED:
            return
        for s in self.sessions.values():
            if s.nexus is not None and s.nexus.key == nexus_key and not s.aen_pending:
                s.aen_pending = True
                s.conn.async_event(lun, build_fixed_sense(SenseKey.UNIT_ATTENTION, *code))
                s.wake.set()

    def send_targets(self, initiator: str, which: str) -> list[tuple[str, list[str]]]:
        """SendTargets: the target with the portals this initiator is zoned to."""
        name = self.target.name
        if which not in ("All", "", name):
            return []
        addresses = [
            p.address for p in self.portals if self.access.authorize(initiator, name, p.tag)
        ]
        return [(name, addresses)] if addresses else []

    # ------------------------------------------------------------------------ internals

    async def _accept_loop(self, listener: trio.SocketListener, portal: Portal) -> None:
        # trio.serve_listeners rides out EMFILE/ENFILE (it waits and retries).
        async def handler(stream: trio.SocketStream) -> None:
            await self._connection(stream, portal)

        await trio.serve_listeners(handler, [listener])

    def _new_tsih(self) -> int:
        for _ in range(0x10000):
            tsih = self._next_tsih
            self._next_tsih = self._next_tsih % 0xFFFF + 1
            if tsih not in self.sessions:
                return tsih
        raise RuntimeError("no free TSIH")

    async def _connection(self, stream: trio.SocketStream, portal: Portal) -> None:
        self._stats["connections"] += 1
        sock = stream.socket
        try:
            peer = "{}:{}".format(*sock.getpeername()[:2])
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            await stream.aclose()
            return
        io = _SocketIO(sock)
        try:
            result = await self._login(io, portal, peer)
            if result is not None:
                await self._full_feature(io, portal, peer, result)
        except _GONE as e:
            self.log.debug("connection from %s ended: %r", peer, e)
        except Exception:  # a bug must cost one connection, never the server
            self.log.exception("connection from %s failed", peer)
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _login(self, io: _SocketIO, portal: Portal, peer: str) -> LoginResult | None:
        server = self

        class Policy:
            def has_target(self, target_name: str) -> bool:
                return target_name == server.target.name

            def authorize(self, initiator: str, target: str, tag: int) -> bool:
                return server.access.authorize(initiator, target, tag)

            def chap_secrets(self, target_name: str | None) -> ChapSecrets | None:
                return server.access.chap_secrets(target_name)

            def tsih_exists(self, tsih: int) -> bool:
                return tsih in server.sessions

        login = Login(
            Policy(),
            self.settings.limits,
            portal_group_tag=portal.tag,
            new_tsih=self._new_tsih,
            rng=self.rng,
            statsn=int.from_bytes(self.rng(4), "big") & 0xFFFF,
        )
        framer = Framer(max_recv_data=LOGIN_MAX_DATA)
        with trio.move_on_after(self.settings.login_timeout) as timeout:
            while True:
                try:
                    rx = await io.receive(framer)
                except PduError as e:
                    self.log.warning("bad PDU during login from %s: %s", peer, e)
                    self._stats["login_failures"] += 1
                    return None
                if not isinstance(rx.record, pdu.LoginRequest):
                    self.log.warning("%s sent %s before login", peer, type(rx.record).__name__)
                    self._stats["login_failures"] += 1
                    return None
                if len(self.sessions) >= self.settings.max_sessions:
                    reply = login.fail(rx.record, LoginStatus.OUT_OF_RESOURCES)
                else:
                    reply = login.receive(rx.record, rx.data)
                await io.send([framer.frame(reply.record.encode(), reply.data)])
                if login.failed:
                    status = (reply.record.status_class << 8) | reply.record.status_detail
                    self.log.warning(
                        "login from %s (%s) failed with status %#06x: %s",
                        peer,
                        login.initiator_name or "?",
                        status,
                        login.error,
                        extra={"initiator": login.initiator_name, "portal": portal.address},
                    )
                    self._stats["login_failures"] += 1
                    return None
                if login.result is not None:
                    self._stats["logins"] += 1
                    return login.result
        if timeout.cancelled_caught:
            self.log.warning("login from %s timed out", peer)
            self._stats["login_failures"] += 1
        return None

    async def _full_feature(
        self, io: _SocketIO, portal: Portal, peer: str, result: LoginResult
    ) -> None:
        p = result.params
        framer = Framer(
            max_recv_data=p.max_recv_data,
            header_digest=p.header_digest,
            data_digest=p.data_digest,
        )
        isid = result.isid.hex()
        extra: dict[str, object] = {
            "initiator": result.initiator_name,
            "session": result.tsih,
            "portal": portal.address,
        }
        nexus = None
        if not result.discovery:
            nexus = Nexus(
                initiator=result.initiator_name,
                initiator_port=f"{result.initiator_name},i,0x{isid}",
                target_port=portal.rtpi,
                tpg=portal.tpg,
            )
        conn = Connection(
            p,
            exp_cmdsn=result.exp_cmdsn,
            statsn=result.next_statsn,
            framer=framer,
            data_out_length=lambda cdb, lun: self.target.data_out_length(cdb, lun),
            fast_reader=None if nexus is None else partial(self.target.read_now_into, nexus),
            send_targets=lambda which: self.send_targets(result.initiator_name, which),
            discovery=result.discovery,
            limits=self.settings.session_limits,
            logger=self.log,
            log_extra=extra,
        )
        # Session reinstatement (RFC 7143 6.3.5): same initiator port and target.
        for old in list(self.sessions.values()):
            if (
                old.login.initiator_name == result.initiator_name
                and old.login.isid == result.isid
                and old.login.target_name == result.target_name
            ):
                self.log.info("reinstating session %d", old.tsih, extra=extra)
                old.cancel.cancel()
        with trio.CancelScope() as cancel:
            session = Session(result.tsih, result, portal, peer, conn, nexus, cancel)
            self.sessions[result.tsih] = session
            self.log.info(
                "%s session %d for %s from %s (MaxRecvDSL %d/%d, bursts %d/%d, "
                "ImmediateData %s, InitialR2T %s, MaxOutstandingR2T %d, digests %s/%s)",
                "discovery" if result.discovery else "normal",
                result.tsih,
                result.initiator_name,
                peer,
                p.max_recv_data,
                p.max_send_data,
                p.first_burst,
                p.max_burst,
                p.immediate_data,
                p.initial_r2t,
                p.max_outstanding_r2t,
                p.header_digest,
                p.data_digest,
                extra=extra,
            )
            io.before_wait = lambda: self._batch_done(io, session)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._reader, io, session, nursery)
                    nursery.start_soon(self._writer, io, session)
                    if self.settings.nop_interval > 0:
                        nursery.start_soon(self._pinger, io, session)
            finally:
                for hold in conn.take_holds():  # file data never sent
                    hold.release()
                if self.sessions.get(result.tsih) is session:
                    del self.sessions[result.tsih]
                if nexus is not None:
                    self.target.i_t_nexus_loss(nexus)
        self.log.info("session %d closed", result.tsih, extra=extra)

    async def _writer(self, io: _SocketIO, s: Session) -> None:
        """Sends what the core queued, in order; responses of tasks that finish together
        leave in one ``sendmsg``."""
        try:
            while True:
                await s.wake.wait()
                s.wake = trio.Event()
                s.aen_pending = False
                await self._flush(io, s.conn)
        except _GONE:
            s.cancel.cancel()

    MAX_QUEUED = 64  # PDUs queued before the reader waits for the socket (backpressure)

    async def _push(self, io: _SocketIO, s: Session) -> None:
        # Replies wait for the end of the receive batch (io.before_wait), unless many.
        if len(s.conn.out) > self.MAX_QUEUED:
            await self._flush(io, s.conn)

    async def _batch_done(self, io: _SocketIO, s: Session) -> None:
        """The reader is about to wait for input: send what it queued, unless the writer
        is busy sending (then the writer takes it along, and the reader keeps going)."""
        if s.conn.out:
            if io.send_lock.locked() or s.wake.is_set():
                s.wake.set()
            else:
                await self._flush(io, s.conn)

    async def _flush(self, io: _SocketIO, conn: Connection) -> None:
        if not conn.out:
            return
        lock = io.send_lock
        try:
            lock.acquire_nowait()  # no trip through the scheduler when it is free
        except trio.WouldBlock:
            await lock.acquire()
        try:
            out = conn.take_output()
            holds = conn.take_holds()
            try:
                if out:
                    await io.send(out)
                    conn.output_sent()
            finally:
                for hold in holds:
                    hold.release()
        finally:
            lock.release()

    async def _reader(self, io: _SocketIO, s: Session, nursery: trio.Nursery) -> None:
        try:
            await self._read_loop(io, s, nursery)
        except _GONE as e:
            self.log.debug("session %d: connection lost: %r", s.tsih, e)
            s.cancel.cancel()

    async def _read_loop(self, io: _SocketIO, s: Session, nursery: trio.Nursery) -> None:
        conn = s.conn
        framer = conn.framer
        while True:
            if s.nexus is not None:
                await self._fast_reads(io, s)
            try:
                rx = await io.receive(framer, conn.data_destination)
            except PduError as e:
                header = e.header if isinstance(e, _FramedError) else b""
                conn.reject(e.reason, header, str(e))
                conn.drop_task_of(header)
                await self._flush(io, conn)
                if e.fatal:
                    s.cancel.cancel()
                    return
                continue
            conn.receive(rx)
            for ev in conn.take_events():
                await self._event(io, s, ev, nursery)
            await self._push(io, s)

    async def _fast_reads(self, io: _SocketIO, s: Session) -> None:
        """Serve the READs at the head of the receive buffer through the fast path
        (:meth:`Connection.fast_read`) until a PDU needs the full one; their replies leave
        with the rest of the receive batch."""
        conn = s.conn
        need = pdu.BHS_LENGTH + (4 if conn.framer.header_digest else 0)
        while True:
            bhs = io.peek(need)
            if bhs is None:
                await io.fill()
                continue
            got = conn.fast_read(bhs)
            if got == FAST_FULL:
                await self._flush(io, conn)
                got = conn.fast_read(io.peek(need) or bhs)
            if got != FAST_DONE:
                return
            io.skip(need)
            if len(conn.out) > self.MAX_QUEUED:
                await self._flush(io, conn)

    async def _event(self, io: _SocketIO, s: Session, ev: object, nursery: trio.Nursery) -> None:
        if isinstance(ev, Execute):
            task = ev.task
            if task.read and task.edtl <= INLINE_READ_MAX and s.nexus is not None:
                # A small read the page cache can serve finishes right here, its Data-In
                # queued with the other replies of this receive batch.  Large ones go
                # to a worker, so that sending one overlaps with reading the next.
                result = self.target.execute_now(
                    s.nexus, task.lun_id, task.cdb, expected_in=task.edtl
                )
                if result is not None:
                    s.conn.complete(task, result)
                    return
            elif task.read and s.nexus is not None and not s.conn.framer.data_digest:
                # A large read the page cache holds is sent straight from the LUN's file
                # (sendfile: no copy, no buffer), by the writer, so that the reader goes
                # on with the next commands meanwhile.
                span = self.target.read_span(s.nexus, task.lun_id, task.cdb, task.edtl)
                if span is not None:
                    s.conn.complete_span(task, *span)
                    s.wake.set()
                    return
            # The others run on per-session workers (started on demand, at most one per
            # outstanding command), cheaper than a new trio task per command.
            s.jobs.append(task)
            s.work.set()
            if s.idle < len(s.jobs) and s.workers <= self.settings.session_limits.queue_depth:
                s.workers += 1
                nursery.start_soon(self._worker, io, s)
        elif isinstance(ev, ManageTasks):
            await self._tmf(io, s, ev)
        elif isinstance(ev, Logout):
            await self._cancel_tasks(s, ev.tasks)
            s.conn.logout_done(ev.request)
            for more in s.conn.take_events():
                await self._event(io, s, more, nursery)
        elif isinstance(ev, Close):
            await self._flush(io, s.conn)
            self.log.info("closing session %d: %s", s.tsih, ev.reason)
            s.cancel.cancel()

    async def _worker(self, io: _SocketIO, s: Session) -> None:
        while True:
            while not s.jobs:
                s.idle += 1
                try:
                    await s.work.wait()
                finally:
                    s.idle -= 1
                if not s.jobs:
                    s.work = trio.Event()
            task = s.jobs.pop(0)
            if not s.jobs:
                s.work = trio.Event()
            if s.conn.tasks.get(task.itt) is task:  # not aborted while it waited
                await self._run(io, s, task)

    async def _run(self, io: _SocketIO, s: Session, task: Task) -> None:
        assert s.nexus is not None
        scope = s.scopes[task.itt] = trio.CancelScope()
        try:
            with scope:
                # EDTL is the expected data-in length of a read and the expected
                # data-out length of a write (RFC 7143 11.3.6).
                result = await self.target.execute(
                    s.nexus,
                    task.lun_id,
                    task.cdb,
                    task.data_out,
                    expected_in=task.edtl if task.read else 0,
                    expected_out=task.edtl if task.write else None,
                )
                if scope.cancel_called:
                    return  # aborted while the backend finished: no response (SAM-5 7.2)
                s.conn.complete(task, result)
                s.wake.set()
        finally:
            s.conn.abandon(task)
            del s.scopes[task.itt]
            s.finished.set()
            s.finished = trio.Event()

    async def _cancel_tasks(self, s: Session, tasks: Sequence[Task]) -> None:
        """Abort ``tasks``: running ones are cancelled and awaited, the others forgotten."""
        running = []
        for t in tasks:
            scope = s.scopes.get(t.itt)
            if scope is not None:
                scope.cancel()
                running.append(t.itt)
            else:
                s.conn.abandon(t)
        while any(itt in s.scopes for itt in running):
            await s.finished.wait()

    async def _tmf(self, io: _SocketIO, s: Session, ev: ManageTasks) -> None:
        req = ev.request
        fn = req.function
        await self._cancel_tasks(s, ev.tasks)
        response = TmfResponse.COMPLETE
        if s.nexus is not None:
            if fn in (TmfFunction.ABORT_TASK_SET, TmfFunction.CLEAR_TASK_SET):
                self.target.abort_task_set(s.nexus, ev.lun_id)
            elif fn == TmfFunction.LOGICAL_UNIT_RESET:
                for other in list(self.sessions.values()):
                    if other is not s:
                        await self._cancel_tasks(
                            other, [t for t in other.conn.tasks.values() if t.lun == req.lun]
                        )
                if not self.target.lun_reset(ev.lun_id, s.nexus):
                    response = TmfResponse.LUN_DOES_NOT_EXIST
            elif fn in (TmfFunction.TARGET_WARM_RESET, TmfFunction.TARGET_COLD_RESET):
                for other in list(self.sessions.values()):
                    if other is not s:
                        await self._cancel_tasks(other, list(other.conn.tasks.values()))
                self.target.target_reset(s.nexus)
        self.log.info(
            "task management %s -> %s",
            TmfFunction(fn).name,
            response.name,
            extra={"session": s.tsih, "lun": ev.lun_id},
        )
        s.conn.tmf_done(req, response)
        await self._flush(io, s.conn)
        if fn == TmfFunction.TARGET_COLD_RESET:
            s.cancel.cancel()

    async def _pinger(self, io: _SocketIO, s: Session) -> None:
        while True:
            await trio.sleep(self.settings.nop_interval)
            if not s.conn.ping():
                self.log.warning(
                    "initiator did not answer NOP-In; closing", extra={"session": s.tsih}
                )
                s.cancel.cancel()
                return
            await self._flush(io, s.conn)


class _FramedError(PduError):
    def __init__(self, inner: PduError, header: bytes) -> None:
        super().__init__(inner.reason, str(inner), fatal=inner.fatal)
        self.header = header


class _SocketIO:
    """Exact-length receives into per-PDU buffers and vectored sends.

    The socket is non-blocking (trio's); reads and writes try the system call first and
    go through trio only to wait, so a busy connection does not pay a trip through the
    scheduler per call.  Before the reader waits for more input, ``before_wait`` runs:
    the session sends the replies of everything received so far in one ``sendmsg``.
    """

    YIELD_EVERY = 8  # receives served without waiting before the reader lets others run

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.send_lock = trio.Lock()
        self.before_wait: Callable[[], Awaitable[None]] | None = None
        self._fd = sock.fileno()
        self._streak = 0
        self._buf = bytearray(65536)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0

    async def _recv_into(self, view: memoryview) -> int:
        while True:
            try:
                got = os.readv(self._fd, [view])
            except BlockingIOError:
                if self.before_wait is not None:
                    await self.before_wait()
                self._streak = 0
                await trio.lowlevel.wait_readable(self.sock)
                continue
            if not got:
                raise EOFError("peer closed the connection")
            self._streak += 1
            if self._streak >= self.YIELD_EVERY:  # fairness to the other sessions
                self._streak = 0
                if self.before_wait is not None:
                    await self.before_wait()
                await trio.lowlevel.checkpoint()
            return got

    async def _fill(self) -> None:
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == len(self._buf):
            n = self._end - self._start
            self._buf[:n] = self._buf[self._start : self._end]
            self._start, self._end = 0, n
        self._end += await self._recv_into(self._view[self._end :])

    def peek(self, n: int) -> memoryview | None:
        """The next ``n`` buffered bytes, left in the buffer; None if fewer are here."""
        start = self._start
        if self._end - start < n:
            return None
        return self._view[start : start + n]

    def skip(self, n: int) -> None:
        """Drop ``n`` buffered bytes (a PDU consumed through :meth:`peek`)."""
        self._start += n

    async def fill(self) -> None:
        """Receive more bytes into the buffer (waiting for them if need be)."""
        await self._fill()

    async def read_into(self, out: memoryview) -> None:
        """Fill ``out``: first from what is buffered, then straight from the socket."""
        pos = 0
        n = len(out)
        avail = self._end - self._start
        if avail:
            k = min(avail, n)
            out[:k] = self._view[self._start : self._start + k]
            self._start += k
            pos = k
        if n - pos >= 16384:
            while pos < n:
                pos += await self._recv_into(out[pos:])
            return
        while pos < n:
            await self._fill()
            k = min(self._end - self._start, n - pos)
            out[pos : pos + k] = self._view[self._start : self._start + k]
            self._start += k
            pos += k

    async def receive(
        self,
        framer: Framer,
        destination: Callable[[bytearray], memoryview | None] | None = None,
    ) -> Received:
        """One PDU. ``destination`` may place a large data segment straight where it
        belongs (a write buffer) instead of a buffer of its own."""
        header = bytearray(pdu.BHS_LENGTH)
        await self.read_into(memoryview(header))
        try:
            head, dsl, tail = framer.split(header)
        except PduError as e:
            raise _FramedError(e, bytes(header)) from None
        size = head + dsl + tail
        dest = destination(header) if destination is not None and dsl >= 16384 else None
        try:
            if not size:  # a command without AHS, digest or data: the common case
                return framer.finish_parts(header, _EMPTY, _EMPTY, _EMPTY)
            if dest is None:
                rest = bytearray(size)
                if size:
                    await self.read_into(memoryview(rest))
                return framer.finish(header, memoryview(rest))
            small = bytearray(head + tail)
            view = memoryview(small)
            await self.read_into(view[:head])
            await self.read_into(dest)
            await self.read_into(view[head:])
            return framer.finish_parts(header, view[:head], dest, view[head:])
        except PduError as e:
            raise _FramedError(e, bytes(header)) from None

    async def send(self, pdus: Sequence[Sequence[Any]]) -> None:
        """Send the PDUs in order: runs of buffers with ``writev``/``sendmsg``, each
        :class:`FileSpan` with ``sendfile``.  The buffers before a span (a Data-In
        header) go with MSG_MORE, so that they share segments with the file data."""
        iov: list[Any] = [b for p in pdus for b in p]
        if not any(type(b) is FileSpan for b in iov):
            await self._send_buffers(iov)
            return
        run: list[Any] = []
        for b in iov:
            if type(b) is FileSpan:
                if run:
                    await self._send_buffers(run, socket.MSG_MORE)
                    run = []
                await self._send_file(b)
            else:
                run.append(b)
        if run:
            await self._send_buffers(run)

    async def _send_file(self, span: FileSpan) -> None:
        """``sendfile`` of the span; the socket is non-blocking, so a full send buffer
        means waiting (through trio) for room, never blocking the event loop."""
        offset = span.offset
        left = span.length
        while left:
            try:
                # The descriptor is asked for again after each wait: a LUN closed
                # meanwhile gives -1 (EBADF ends the connection), never a reused number.
                n = os.sendfile(self._fd, span.source.fileno(), offset, left)
            except BlockingIOError:
                # A sendfile cut short leaves its last segment corked (it was sent as
                # "more to come"); setting TCP_NODELAY pushes it now, else it waits for
                # the kernel's 200 ms timer while the peer has nothing to acknowledge.
                if self.sock.family in (socket.AF_INET, socket.AF_INET6):
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await trio.lowlevel.wait_writable(self.sock)
                continue
            if n == 0:  # the file ended early: the PDU cannot be completed
                raise OSError(errno.EIO, f"file ended {left} bytes into a Data-In segment")
            offset += n
            left -= n

    async def _send_buffers(self, iov: list[Any], flags: int = 0) -> None:
        while iov:
            batch = iov[:IOV_MAX]
            total = sum(len(b) for b in batch)
            sent = -1
            if flags:
                sent = await self.sock.sendmsg(batch, (), flags)
            elif total <= SYNC_SEND_MAX:
                try:
                    sent = os.writev(self._fd, batch)
                except BlockingIOError:
                    sent = -1
            if sent < 0:
                # Large sends go through trio, which lets the reader and the workers
                # run between partial sends (the next reads overlap with this one).
                sent = await self.sock.sendmsg(batch)
            if sent == total:
                iov = iov[IOV_MAX:]
                continue
            # Partial send: drop what went out, keep the rest of the first unsent buffer.
            i = 0
            while sent >= len(iov[i]):
                sent -= len(iov[i])
                i += 1
            iov = [memoryview(iov[i])[sent:], *iov[i + 1 :]]
