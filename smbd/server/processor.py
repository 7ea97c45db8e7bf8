"""Message processing for one connection ([MS-SMB2] 3.3.5.2): framing checks,
decryption, compound chains, message-id and credit checks, session and tree lookup,
signature verification, dispatch, async operations and CANCEL, and the responses.

Each received message is processed in its own task, so a request that waits (a blocking
lock, CHANGE_NOTIFY, a slow disk) never holds up the others; responses may go out in any
order, as MS-SMB2 allows. Memory is bounded: the credit window bounds the requests a
client may have outstanding and a byte budget stops reading from a client whose requests
pin too much.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

import trio

from smbd import crypto
from smbd.server.compose import OutMessage, build_chain, error_body
from smbd.server.credits import CreditError
from smbd.server.model import (
    CONN_TRANSITIONS,
    Connection,
    ConnEvent,
    ConnState,
    Session,
    SessionState,
)
from smbd.server.request import ChainState, Handler, Request, Response, SMBError
from smbd.transport.base import FramingError, Transport, TransportClosed
from smbd.transport.buffers import POOL
from smbd.wire.constants import (
    PROTOCOL_ID,
    SMB1_PROTOCOL_ID,
    TRANSFORM_PROTOCOL_ID,
    Command,
    HeaderFlags,
)
from smbd.wire.errors import ParseError
from smbd.wire.header import HEADER_SIZE, SIGNATURE_OFFSET, Header, command_name, parse_header
from smbd.wire.misc import parse_simple
from smbd.wire.rw import WRITE_DATA_OFFSET
from smbd.wire.session import SESSION_FLAG_BINDING
from smbd.wire.status import NTStatus

if TYPE_CHECKING:
    from smbd.server.server import SMBServer

_SESSION_ID_NONE = 0xFFFF_FFFF_FFFF_FFFF
# header flags as plain ints: an IntFlag operation builds an enum member (~1 us), and the
# hot path tests a dozen flags per request
_SERVER_TO_REDIR = int(HeaderFlags.SERVER_TO_REDIR)
_RELATED = int(HeaderFlags.RELATED_OPERATIONS)
_SIGNED = int(HeaderFlags.SIGNED)
_ASYNC = int(HeaderFlags.ASYNC_COMMAND)
# ProtocolId, Command and NextCommand of a header ([MS-SMB2] 2.2.1)
_PEEK = struct.Struct("<4s8xH6xI")
_U32 = struct.Struct("<I")
_NO_SIGNATURE = bytes(16)
_REQUEST = ConnEvent.REQUEST
_NEGOTIATED = ConnState.NEGOTIATED
# commands whose handlers never go async on a file share (only CREATE, SET_INFO, LOCK,
# CHANGE_NOTIFY, IOCTL and named-pipe I/O do): they run without a cancel scope
_NEVER_ASYNC = frozenset(
    (
        Command.ECHO,
        Command.QUERY_INFO,
        Command.CLOSE,
        Command.FLUSH,
        Command.READ,
        Command.WRITE,
    )
)
# processed in the receive loop when alone in a message (see _inline)
_INLINE_COMMANDS = frozenset((Command.ECHO, Command.QUERY_INFO, Command.CLOSE))
_POOLED = 64 * 1024  # decrypted and encrypted messages this large use pooled buffers
_U32_READERS: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    # command: ((send payload offsets), (expected response offsets)) in the body
    Command.READ: ((), (4,)),
    Command.WRITE: ((4,), ()),
    Command.IOCTL: ((28, 40), (32, 44)),
    Command.QUERY_DIRECTORY: ((), (28,)),
    Command.CHANGE_NOTIFY: ((), (4,)),
    Command.QUERY_INFO: ((), (4,)),
    Command.SET_INFO: ((4,), ()),
}


class Disconnect(Exception):
    """The connection must be dropped ([MS-SMB2] says "disconnect" for this input)."""


class CommandInfo(NamedTuple):
    """What a command needs before its handler runs ([MS-SMB2] 3.3.5.2.9, 3.3.5.2.11)."""

    needs_session: bool
    needs_tree: bool


COMMAND_INFO: Mapping[int, CommandInfo] = {
    Command.NEGOTIATE: CommandInfo(False, False),
    Command.SESSION_SETUP: CommandInfo(False, False),
    Command.LOGOFF: CommandInfo(True, False),
    Command.TREE_CONNECT: CommandInfo(True, False),
    Command.TREE_DISCONNECT: CommandInfo(True, True),
    Command.CREATE: CommandInfo(True, True),
    Command.CLOSE: CommandInfo(True, True),
    Command.FLUSH: CommandInfo(True, True),
    Command.READ: CommandInfo(True, True),
    Command.WRITE: CommandInfo(True, True),
    Command.LOCK: CommandInfo(True, True),
    Command.IOCTL: CommandInfo(True, True),
    Command.ECHO: CommandInfo(False, False),
    Command.QUERY_DIRECTORY: CommandInfo(True, True),
    Command.CHANGE_NOTIFY: CommandInfo(True, True),
    Command.QUERY_INFO: CommandInfo(True, True),
    Command.SET_INFO: CommandInfo(True, True),
    Command.OPLOCK_BREAK: CommandInfo(True, True),
}


class ChainRun(ChainState):
    """One received message being processed: its chain state plus the responses built so
    far and the session whose key decrypted it."""

    __slots__ = ("encrypted_by", "has_more", "index", "out")

    def __init__(self, encrypted_by: Session | None) -> None:
        super().__init__()
        self.encrypted_by = encrypted_by
        self.out: list[tuple[OutMessage, Session | None]] = []
        self.index = 0
        self.has_more = False  # requests follow the current one in the chain


class RequestState:
    """Bookkeeping the processor keeps per running request."""

    __slots__ = ("cancel_requested", "charge", "credits_granted")

    def __init__(self, charge: int) -> None:
        self.cancel_requested = False
        self.credits_granted = False
        self.charge = charge  # the credits the request spent ([MS-SMB2] 3.3.5.2.5)


class ConnectionProcessor:
    """Runs one connection: the receive loop and the processing of each message."""

    def __init__(
        self,
        server: SMBServer,
        transport: Transport,
        connection: Connection,
        handlers: Mapping[int, Handler],
    ) -> None:
        self.server = server
        self.transport = transport
        self.conn = connection
        self.handlers = handlers
        self.log = server.log
        self._extra = {"conn": connection.conn_id, "peer": connection.peer}
        self._nursery: trio.Nursery | None = None
        self._inflight_bytes = 0
        self._inflight_changed = trio.Event()
        self._next_async_id = 1
        self._states: dict[int, RequestState] = {}  # id(Request) -> state
        self.requests = 0
        self.errors = 0
        self.on_negotiated: Callable[[], None] | None = None
        # transports that pool their receive buffers take each message back when done
        self._release: Callable[[memoryview], None] | None = getattr(transport, "release", None)
        # requests that wait for nothing are processed in the receive loop (_inline);
        # direct TCP only: an SMB Direct send can wait for credits that only a receive
        # brings. _preread carries a READ's early data to the Request built for it.
        self._inline_ok = getattr(transport, "name", "") == "tcp"
        self._preread_fn = server.preread
        self._write_now = server.write_now
        self._preread: object | None = None
        self.inline = 0  # requests processed in the receive loop
        # tasks started for messages that have not run yet: while there are any, a message
        # is not processed inline, which would overtake them (a CLOSE must find an IOCTL
        # sent before it already running on the open: smbtorture smb2.ioctl.bug14769)
        self._unstarted = 0

    # ---------------------------------------------------------------- receive loop

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._receive_loop(nursery)
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            self.conn.closed = True

    async def _receive_loop(self, nursery: trio.Nursery) -> None:
        limits = self.server.limits
        while not self.conn.closed:
            idle = limits.handshake_timeout if not self._has_valid_session() else None
            timed_out = False
            try:
                if idle is None:  # no cancel scope per message once a session is set up
                    msg = await self.transport.receive()
                else:
                    with trio.move_on_after(idle) as scope:
                        msg = await self.transport.receive()
                    timed_out = scope.cancelled_caught
            except TransportClosed as e:
                self.log.debug("connection closed: %s", e, extra=self._extra)
                return
            except FramingError as e:
                self.log.warning("dropping connection: %s", e, extra=self._extra)
                return
            if timed_out:
                self.log.warning(
                    "dropping connection: nothing established within %.1f s",
                    idle,
                    extra=self._extra,
                )
                return
            size = len(msg)
            while self._inflight_bytes and self._inflight_bytes + size > limits.inflight_bytes:
                self._inflight_changed = trio.Event()
                await self._inflight_changed.wait()
            self._inflight_bytes += size
            if self._inline_ok and not self._unstarted and await self._inline(msg):
                continue
            self._unstarted += 1
            nursery.start_soon(self._process_task, msg)

    async def _process_task(self, msg: memoryview) -> None:
        self._unstarted -= 1
        await self._process_message(msg)

    async def _inline(self, msg: memoryview) -> bool:
        """Process ``msg`` here, in the receive loop, when it is one request (no chain) that
        waits for nothing but the send of its response: no task of its own and no scheduler
        pass before it runs. Those are ECHO, QUERY_INFO and CLOSE (none of them waits for a
        client: only CREATE, SET_INFO, LOCK, CHANGE_NOTIFY and named-pipe I/O do, and they
        keep their tasks), a WRITE the backend would write on the event loop
        (``server.write_now``), and a READ whose data the page cache holds: that data is
        read first (``server.preread``, RWF_NOWAIT). The message then takes the usual
        path, every check included. False: the caller starts a task for it as for any other.
        Only called when every message before it has started running (``_unstarted``)."""
        if len(msg) <= HEADER_SIZE:
            return False
        proto, command, next_command = _PEEK.unpack_from(msg)
        if proto != PROTOCOL_ID or next_command:
            return False
        if command == Command.READ:
            return await self._inline_read(msg)
        if command == Command.WRITE:
            ok = self._write_now is not None and self._write_now(
                self.server.files, msg[HEADER_SIZE:]
            )
        else:
            ok = command in _INLINE_COMMANDS
        if not ok:
            return False
        self.inline += 1
        await self._process_message(msg)
        return True

    async def _inline_read(self, msg: memoryview) -> bool:
        if self._preread_fn is None:
            return False
        pre = self._preread_fn(self.server.files, msg[HEADER_SIZE:])
        if pre is None:
            return False
        self._preread = pre
        self.inline += 1
        try:
            await self._process_message(msg)
        finally:
            self._preread = None
            if pre.buf is not None:  # not used (the READ failed a check): it goes back
                POOL.give(pre.buf)
        return True

    def _has_valid_session(self) -> bool:
        return any(s.state is SessionState.VALID for s in self.conn.sessions.values())

    def close(self, reason: str) -> None:
        if not self.conn.closed:
            self.log.warning("dropping connection: %s", reason, extra=self._extra)
        self.conn.closed = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _process_message(self, msg: memoryview) -> None:
        try:
            await self._handle_message(msg)
        except Disconnect as e:
            self.close(str(e))
        except (TransportClosed, FramingError) as e:
            self.close(str(e))
        except Exception:
            self.log.exception("internal error processing a message", extra=self._extra)
            self.close("internal error")
        finally:
            self._inflight_bytes -= len(msg)
            self._inflight_changed.set()
            if self._release is not None:
                self._release(msg)

    # ---------------------------------------------------------------- one message

    async def _handle_message(self, msg: memoryview) -> None:
        proto = bytes(msg[:4])
        if proto == PROTOCOL_ID:
            await self._process_chain(msg, ChainRun(None))
        elif proto == TRANSFORM_PROTOCOL_ID:
            session, plain = self._decrypt(msg)
            if bytes(plain[:4]) != PROTOCOL_ID:
                raise Disconnect("decrypted message is not SMB2")
            await self._process_chain(plain, ChainRun(session))
            if self._release is not None:
                self._release(plain)
        elif proto == SMB1_PROTOCOL_ID:
            from smbd.server.negotiate import handle_smb1_negotiate

            self._check_transition(ConnEvent.SMB1_NEGOTIATE)
            out = await handle_smb1_negotiate(self.server, self.conn, msg)
            if out is None:
                raise Disconnect("SMB1 negotiate without an SMB2 dialect")
            if self.on_negotiated is not None:
                self.on_negotiated()
            await self._send([(out, None)], None)
        else:
            raise Disconnect(f"unknown protocol id {proto.hex()}")

    def _decrypt(self, msg: memoryview) -> tuple[Session, memoryview]:
        """[MS-SMB2] 3.3.5.2.1.1: any failure here drops the connection."""
        try:
            th = crypto.parse_transform_header(msg)
        except crypto.CryptoError as e:
            raise Disconnect(f"bad transform header: {e}") from None
        session = self.server.sessions.get(th.session_id)
        if (
            session is None
            or session.keys is None
            or not session.keys.decryption
            or session.channel_for(self.conn) is None
        ):
            raise Disconnect(f"encrypted message for unknown session 0x{th.session_id:x}")
        size = len(msg) - crypto.TRANSFORM_HEADER_SIZE
        into = (
            POOL.take(size + 15, WRITE_DATA_OFFSET)  # the plaintext starts there: see tcp
            if size >= _POOLED and self._release is not None
            else None
        )
        try:
            _sid, plain = crypto.decrypt(session.cipher_id, session.keys.decryption, msg, into)
        except crypto.CryptoError as e:
            raise Disconnect(f"decryption failed: {e}") from None
        if len(plain) < HEADER_SIZE:
            raise Disconnect("decrypted message shorter than a header")
        session.encrypted_traffic = True
        return session, memoryview(plain)

    async def _process_chain(self, msg: memoryview, chain: ChainRun) -> None:
        offset = 0
        index = 0
        while True:
            try:
                header = parse_header(msg, offset)
            except ParseError as e:
                raise Disconnect(str(e)) from None
            nxt = header.next_command
            if nxt:
                if nxt % 8 or nxt < HEADER_SIZE or offset + nxt > len(msg):
                    raise Disconnect(f"NextCommand {nxt} invalid")
                end = offset + nxt
            else:
                end = len(msg)
            chain.index = index
            chain.has_more = bool(nxt)
            was = self.conn.state
            result = await self._process_request(msg[offset:end], header, chain, index)
            if was is not self.conn.state and self.on_negotiated is not None:
                self.on_negotiated()
            if result is not None:
                chain.out.append(result)
            if not nxt:
                break
            offset = end
            index += 1
        if chain.out:
            out, chain.out = chain.out, []
            await self._send(out, chain.encrypted_by)
            if self._release is not None:
                for m, _s in out:
                    # READ data buffers come from the pool (files.readwrite); the data is
                    # a view of the frame when there is one, and both must go first
                    if m.header.command == Command.READ and len(m.body) == 2:
                        data = m.body[1]
                        if isinstance(data, memoryview):
                            m.body[1] = b""
                            frame, m.frame = m.frame, None
                            if frame is not None:
                                del data
                                self._release(frame)
                            else:
                                self._release(data)

    # ---------------------------------------------------------------- one request

    async def _process_request(
        self, element: memoryview, header: Header, chain: ChainRun, index: int
    ) -> tuple[OutMessage, Session | None] | None:
        conn = self.conn
        cmd = header.command
        self._check_transition(
            ConnEvent.NEGOTIATE if cmd == Command.NEGOTIATE else ConnEvent.REQUEST
        )
        flags = int(header.flags)
        if flags & _SERVER_TO_REDIR:
            raise Disconnect("request with SERVER_TO_REDIR set")
        if cmd == Command.CANCEL:
            self._cancel(element, header, chain)
            return None
        self.requests += 1

        # [MS-SMB2] 3.3.5.2.3 / 3.3.5.2.5: message id inside the window, charge covers it
        large_mtu = conn.supports_large_mtu
        charge = max(header.credit_charge, 1) if large_mtu else 1
        try:
            conn.credits.consume(header.message_id, charge)
        except CreditError as e:
            raise Disconnect(str(e)) from None

        related = bool(flags & _RELATED)
        req = Request(
            header=header,
            body=element[HEADER_SIZE:],
            message=element,
            server=self.server,
            connection=conn,
            session=None,
            tree=None,
            chain=chain,
            hooks=self,
        )
        if self._preread is not None:  # this is the READ _inline_read read ahead for
            req.preread, self._preread = self._preread, None
        state = RequestState(charge)
        self._states[id(req)] = state
        status: int = NTStatus.SUCCESS
        resp: Response
        try:
            try:
                if not related:
                    chain.related_file_id = None  # an unrelated request starts afresh
                if related and chain.failed_status is not None:
                    raise SMBError(chain.failed_status, "a CREATE earlier in the chain failed")
                info = COMMAND_INFO.get(cmd)
                if info is None:
                    raise SMBError(NTStatus.INVALID_PARAMETER, f"unknown command 0x{cmd:04x}")
                handler = self.handlers.get(cmd)
                if handler is None:
                    raise SMBError(NTStatus.NOT_SUPPORTED, f"{command_name(cmd)} not supported")
                self._lookup_session(req, info, chain, related)
                if info.needs_tree:
                    self._lookup_tree(req, chain, related)
                # after the session: its error is signed like any of the session's
                if large_mtu:
                    self._check_credit_charge(header, req.body, charge)
                resp = await self._run_handler(req, handler, state)
            except SMBError as e:
                resp = Response(error_body(e.error_data), e.status)
                self._log_error(req, e.status, str(e))
                if req.session is None:
                    self._find_signer(req)
            except ParseError as e:
                if e.disconnect:
                    raise Disconnect(str(e)) from None
                resp = Response(error_body(), e.status)
                self._log_error(req, e.status, str(e))
            except Disconnect:
                raise
            except Exception:
                # a bug in a handler: answer it, log it, keep serving the connection
                self.log.exception(
                    "%s handler failed", command_name(cmd), extra=self._extra_for(req)
                )
                resp = Response(error_body(), NTStatus.INTERNAL_ERROR)
                self.errors += 1
            status = resp.status
            if cmd == Command.CREATE and _is_error(status):
                chain.failed_status = status
            # the lookups set the chain's session and tree; a new session or tree made by
            # this request is what related requests after it use
            if cmd == Command.SESSION_SETUP and req.session is not None and not _is_error(status):
                chain.session_id = req.session.session_id
            if cmd == Command.TREE_CONNECT and req.tree is not None and not _is_error(status):
                chain.tree_id = req.tree.tree_id
            return self._response(req, state, resp, chain)
        finally:
            del self._states[id(req)]

    def _check_transition(self, event: ConnEvent) -> None:
        if event is _REQUEST and self.conn.state is _NEGOTIATED:
            return  # the usual case, without hashing two enum members (Enum.__hash__)
        if (self.conn.state, event) not in CONN_TRANSITIONS:
            raise Disconnect(f"{event.value} in connection state {self.conn.state.value}")

    def _log_error(self, req: Request, status: int, message: str) -> None:
        if not _is_error(status):  # NO_MORE_FILES, BUFFER_OVERFLOW, ...: routine
            self.log.debug("%s -> 0x%08x", command_name(req.header.command), status)
            return
        self.errors += 1
        try:
            name = NTStatus(status).name
        except ValueError:
            name = f"0x{status:08x}"
        self.log.info(
            "%s -> %s: %s",
            command_name(req.header.command),
            name,
            message,
            extra=self._extra_for(req),
        )

    def _extra_for(self, req: Request) -> dict[str, object]:
        extra: dict[str, object] = dict(self._extra)
        extra["session"] = req.session.session_id if req.session else req.header.session_id
        extra["tree"] = req.tree.tree_id if req.tree else req.header.tree_id
        extra["mid"] = req.header.message_id
        return extra

    def _check_credit_charge(self, header: Header, body: memoryview, charge: int) -> None:
        """[MS-SMB2] 3.3.5.2.5: with multi-credit, CreditCharge must cover the payload."""
        offsets = _U32_READERS.get(header.command)
        if offsets is None:
            return
        send_off, recv_off = offsets
        if len(body) < 48 and header.command == Command.IOCTL:
            return  # the handler reports the short body
        send = recv = 0
        try:
            for o in send_off:
                send += _U32.unpack_from(body, o)[0]
            for o in recv_off:
                recv += _U32.unpack_from(body, o)[0]
        except struct.error:
            return  # a short body: the handler's parser reports it
        needed = (max(send, recv, 1) - 1) // 65536 + 1
        if needed > charge:
            raise SMBError(
                NTStatus.INVALID_PARAMETER,
                f"CreditCharge {charge} does not cover a payload of {max(send, recv)} bytes",
            )

    def _lookup_session(
        self, req: Request, info: CommandInfo, chain: ChainRun, related: bool
    ) -> None:
        """[MS-SMB2] 3.3.5.2.9 and the signing rules of 3.3.5.2.4.

        A related request uses the session of the request before it (3.3.5.2.7.2), which
        is none if that one failed its session check; a related request without one is
        INVALID_PARAMETER (also the first request of a chain marked related), as Windows
        and Samba answer."""
        header = req.header
        sid = chain.session_id if related else header.session_id
        chain.session_id = 0
        if header.command == Command.SESSION_SETUP:
            # SESSION_SETUP finds (or creates) its session itself; a signed re-auth or
            # binding request is verified here when the session is known.
            session = self.server.sessions.get(sid) if sid else None
            if session is None or session.channel_for(self.conn) is None:
                return  # the handler checks binding requests and foreign sessions
            if header.flags & HeaderFlags.SIGNED:
                self._verify_setup_signature(req, session)
            elif (
                session.state is SessionState.VALID
                and session.signing_required
                and not (len(req.body) > 2 and req.body[2] & SESSION_FLAG_BINDING)
            ):
                req.session = session
                raise SMBError(NTStatus.ACCESS_DENIED, "unsigned re-authentication")
            return
        session = self.server.sessions.get(sid) if sid else None
        if session is None or session.channel_for(self.conn) is None:
            if not info.needs_session:
                return  # ECHO: answered without a session (and unsigned)
            if related:
                raise SMBError(NTStatus.INVALID_PARAMETER, "related request without a session")
            # A client that requires signing rejects an unsigned error: when the request
            # is signed with the key of a session we know (logged off here, or not bound
            # to this connection), the error goes out signed with that key.
            known = session if session is not None else self.conn.logged_off.get(sid)
            if known is not None and header.flags & HeaderFlags.SIGNED and known.keys is not None:
                key, algorithm = self._channel_signing(known)
                if crypto.verify(algorithm, key or known.signing_key, req.message):
                    req.session = known
            raise SMBError(NTStatus.USER_SESSION_DELETED, f"no session 0x{sid:x}")
        if session.state is SessionState.IN_PROGRESS:
            raise SMBError(NTStatus.USER_SESSION_DELETED, "session setup not finished")
        if session.state is SessionState.EXPIRED:
            raise SMBError(NTStatus.NETWORK_SESSION_EXPIRED, "session expired")
        req.session = session
        chain.session_id = sid
        encrypted = chain.encrypted_by is not None
        if encrypted:
            if chain.encrypted_by is not session:
                raise Disconnect("compound request mixes encrypted sessions")
            return
        if int(header.flags) & _SIGNED:
            self._verify_signature(req, session)
        elif session.signing_required:
            raise SMBError(NTStatus.ACCESS_DENIED, "unsigned request on a signed session")
        if session.encrypt_data:
            raise SMBError(NTStatus.ACCESS_DENIED, "unencrypted request on an encrypted session")

    def _find_signer(self, req: Request) -> None:
        """An error found before the session was (e.g. a related request with nothing to
        relate to, an unknown command): if the request is signed with the key of the
        session its header names, the error goes out signed with it too, since a client
        that requires signing rejects an unsigned answer."""
        header = req.header
        if not header.flags & HeaderFlags.SIGNED:
            return
        chain = req._chain
        sid = chain.session_id if req.is_related and chain.session_id else header.session_id
        session = self.server.sessions.get(sid)
        if session is None or session.keys is None or session.channel_for(self.conn) is None:
            return
        key, algorithm = self._channel_signing(session)
        if crypto.verify(algorithm, key, req.message):
            req.session = session

    def _verify_setup_signature(self, req: Request, session: Session) -> None:
        """A SESSION_SETUP for a session bound to this connection is checked with this
        channel's key, as any request (re-authentication, or binding again). Signed with
        the session's own key instead (what a client does when it binds, so a second
        binding on a connection that has its channel), it is refused under that key,
        which is the one such a client checks the answer with."""
        try:
            self._verify_signature(req, session)
        except SMBError:
            key, algorithm = session.signing_key, session.signing_algorithm
            if key and crypto.verify(algorithm, key, req.message):
                req.session = session
                req.sign_with = (key, algorithm)
                raise SMBError(
                    NTStatus.ACCESS_DENIED, "signed with the session key, not the channel's"
                ) from None
            raise

    def _channel_signing(self, session: Session) -> tuple[bytes, int]:
        """The signing key of ``session``'s channel on this connection (empty without one)
        and the algorithm it signs with (the session's without a channel)."""
        channel = session.channel_for(self.conn)
        if channel is None:
            return b"", session.signing_algorithm
        return channel.signing_key, channel.signing_algorithm

    def _verify_signature(self, req: Request, session: Session) -> None:
        key, algorithm = self._channel_signing(session)
        if not key:
            if session.state is SessionState.IN_PROGRESS:
                return  # nothing to verify with yet
            raise SMBError(NTStatus.ACCESS_DENIED, "signed request without a signing key")
        if not crypto.verify(algorithm, key, req.message):
            raise SMBError(NTStatus.ACCESS_DENIED, "bad signature")

    def _lookup_tree(self, req: Request, chain: ChainRun, related: bool) -> None:
        """[MS-SMB2] 3.3.5.2.11"""
        session = req.session
        assert session is not None
        tid = chain.tree_id if related else req.header.tree_id
        chain.tree_id = 0
        tree = session.trees.get(tid)
        if tree is None:
            raise SMBError(NTStatus.NETWORK_NAME_DELETED, f"no tree 0x{tid:x}")
        req.tree = tree
        chain.tree_id = tid
        if tree.encrypt_data and chain.encrypted_by is None:
            raise SMBError(NTStatus.ACCESS_DENIED, "unencrypted request on an encrypted share")

    async def _run_handler(self, req: Request, handler: Handler, state: RequestState) -> Response:
        conn = self.conn
        mid = req.header.message_id
        if req.header.command in _NEVER_ASYNC and (req.tree is None or not req.tree.is_ipc):
            # no cancel scope: only a request that went async is cancelled (_cancel)
            conn.pending_sync[mid] = req
            try:
                return await handler(req)
            finally:
                conn.pending_sync.pop(mid, None)
        with trio.CancelScope() as scope:
            req.cancel_scope = scope
            conn.pending_sync[mid] = req
            try:
                resp = await handler(req)
            finally:
                conn.pending_sync.pop(mid, None)
                if req.async_id:
                    conn.pending_async.pop(req.async_id, None)
        if scope.cancelled_caught:
            raise SMBError(NTStatus.CANCELLED, "cancelled")
        return resp

    # ---------------------------------------------------------------- async and cancel

    async def go_async(self, req: Request) -> int:
        """[MS-SMB2] 3.3.4.2: send the interim response; the final one follows later."""
        conn = self.conn
        if len(conn.pending_async) >= self.server.limits.async_per_connection:
            raise SMBError(NTStatus.INSUFFICIENT_RESOURCES, "too many async operations")
        state = self._states[id(req)]
        chain = req._chain
        assert isinstance(chain, ChainRun)
        if chain.has_more and req.header.command != Command.CREATE:
            # [MS-SMB2] 3.3.5.2.7 and its product note: only a CREATE (waiting for an
            # oplock or lease break) or the last request of a chain goes async; Windows
            # and Samba fail any other with INTERNAL_ERROR.
            raise SMBError(NTStatus.INTERNAL_ERROR, "cannot go async inside a compound chain")
        async_id = self._next_async_id
        self._next_async_id += 1
        conn.pending_async[async_id] = req
        header = req.header
        grant = conn.credits.grant(header.credits, 1)
        state.credits_granted = True
        interim = Header(
            credit_charge=header.credit_charge,
            status=NTStatus.PENDING,
            command=header.command,
            credits=grant,
            flags=(header.flags & HeaderFlags.RELATED_OPERATIONS) | HeaderFlags.ASYNC_COMMAND,
            next_command=0,
            message_id=header.message_id,
            async_id=async_id,
            tree_id=0,
            session_id=req.session.session_id if req.session else header.session_id,
            signature=bytes(16),
        )
        out = OutMessage(interim, error_body())
        if req.session is not None:
            self._sign_setup(out, req.session, req, state)
        pending = [*chain.out, (out, req.session)]
        chain.out = []
        await self._send(pending, chain.encrypted_by)
        if state.cancel_requested and req.cancel_scope is not None:
            req.cancel_scope.cancel()
        return async_id

    def _cancel(self, element: memoryview, header: Header, chain: ChainRun) -> None:
        """[MS-SMB2] 3.3.5.16: CANCEL takes no credit and gets no response."""
        try:
            parse_simple(element[HEADER_SIZE:], "CANCEL")
        except ParseError:
            return
        conn = self.conn
        if header.flags & HeaderFlags.ASYNC_COMMAND:
            target = conn.pending_async.get(header.async_id)
        else:
            target = conn.pending_sync.get(header.message_id)
        if target is None:
            return
        if target.session is not None and header.session_id != target.session.session_id:
            return
        self.log.debug(
            "cancel %s", command_name(target.header.command), extra=self._extra_for(target)
        )
        state = self._states.get(id(target))
        if target.async_id and target.cancel_scope is not None:
            target.cancel_scope.cancel()
        elif state is not None:
            state.cancel_requested = True

    # ---------------------------------------------------------------- responses

    def _response(
        self, req: Request, state: RequestState, resp: Response, chain: ChainRun
    ) -> tuple[OutMessage, Session | None] | None:
        header = req.header
        conn = self.conn
        grant = 0 if state.credits_granted else conn.credits.grant(header.credits, state.charge)
        flags = int(header.flags) & _RELATED
        session = req.session
        sid = session.session_id if session is not None else header.session_id
        if header.command == Command.NEGOTIATE:
            sid = 0
        if req.async_id:
            flags |= _ASYNC
        h = Header(  # positional: a NamedTuple built from keywords costs twice as much
            header.credit_charge,
            resp.status,
            header.command,
            grant,
            flags,
            0,  # NextCommand: set when the chain is laid out
            header.message_id,
            req.async_id,
            req.tree.tree_id if req.tree is not None else header.tree_id,
            sid,
            _NO_SIGNATURE,
        )
        out = OutMessage(h, resp.body, after_send=req.on_response, frame=resp.frame)
        if session is not None:
            self._sign_setup(out, session, req, state)
        elif int(header.flags) & _SIGNED and _is_error(resp.status):
            out.echo_signature = bytes(req.message[SIGNATURE_OFFSET : SIGNATURE_OFFSET + 16])
        if req.async_id:
            # the final response of an async request goes out on its own
            self._nursery_send([(out, session)], chain.encrypted_by)
            return None
        return out, session

    def _sign_setup(
        self, out: OutMessage, session: Session, req: Request, state: RequestState
    ) -> None:
        """[MS-SMB2] 3.3.4.1.1: sign when the request was signed, the session requires
        signing, or the response must be signed; never for guest or anonymous sessions."""
        if session.keys is None or session.is_guest or session.is_anonymous:
            return
        if not (req.sign_response or session.signing_required or int(req.header.flags) & _SIGNED):
            return
        if req.sign_with is not None:
            out.sign_key, out.sign_algorithm = req.sign_with
            return
        key, out.sign_algorithm = self._channel_signing(session)
        out.sign_key = key or session.signing_key

    def _nursery_send(
        self, out: list[tuple[OutMessage, Session | None]], encrypted_by: Session | None
    ) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._send_or_close, out, encrypted_by)

    async def _send_or_close(
        self, out: list[tuple[OutMessage, Session | None]], encrypted_by: Session | None
    ) -> None:
        try:
            await self._send(out, encrypted_by)
        except (TransportClosed, Disconnect) as e:
            self.close(str(e))

    def _encrypting_session(
        self, out: list[tuple[OutMessage, Session | None]], encrypted_by: Session | None
    ) -> Session | None:
        """[MS-SMB2] 3.3.4.1.4: encrypt when the request was encrypted, or the session
        or the request's tree requires it (not for SESSION_SETUP responses, whose keys are
        new, nor for the TREE_CONNECT that creates the tree)."""
        if encrypted_by is not None:
            return encrypted_by
        for m, session in out:
            if (
                session is not None
                and session.encryptor is not None
                and m.header.command != Command.SESSION_SETUP
                and (
                    session.encrypt_data
                    or (
                        m.header.command != Command.TREE_CONNECT
                        and self._tree_encrypts(session, m.header.tree_id)
                    )
                )
            ):
                return session
        return None

    @staticmethod
    def _tree_encrypts(session: Session, tree_id: int) -> bool:
        tree = session.trees.get(tree_id)
        return tree is not None and tree.encrypt_data

    async def _send(
        self, out: list[tuple[OutMessage, Session | None]], encrypted_by: Session | None
    ) -> None:
        if self.conn.closed:
            return
        enc = self._encrypting_session(out, encrypted_by)
        if enc is not None:
            for m, _s in out:
                m.sign_key = m.echo_signature = b""  # an encrypted message is not signed
        parts = build_chain([m for m, _s in out])
        into = None
        if enc is not None and enc.encryptor is not None:
            size = sum(len(p) for p in parts)
            if size >= _POOLED and self._release is not None:
                into = POOL.take(size + 15)  # the ciphertext goes straight there
            try:
                parts = list(enc.encryptor.encrypt(enc.session_id, parts, into))
            except crypto.CryptoError as e:
                raise Disconnect(str(e)) from None
        await self.transport.send(parts)
        if into is not None and self._release is not None:
            del parts
            self._release(into)

    async def send_unsolicited(
        self, command: int, body: list[bytes | bytearray | memoryview], session: Session | None
    ) -> None:
        """[MS-SMB2] 3.3.4.6/3.3.4.7: MessageId all ones, no credits, not signed;
        encrypted when the session requires it."""
        h = Header(
            credit_charge=0,
            status=NTStatus.SUCCESS,
            command=command,
            credits=0,
            flags=0,
            next_command=0,
            message_id=0xFFFF_FFFF_FFFF_FFFF,
            async_id=0,
            tree_id=0,
            session_id=0,
            signature=bytes(16),
        )
        enc = session if session is not None and session.encrypt_data else None
        await self._send([(OutMessage(h, body), session)], enc)

    def statistics(self) -> dict[str, object]:
        return {
            "conn": self.conn.conn_id,
            "peer": self.conn.peer,
            "dialect": self.conn.dialect_text,
            "requests": self.requests,
            "inline": self.inline,
            "errors": self.errors,
            "async": len(self.conn.pending_async),
            "inflight_bytes": self._inflight_bytes,
            "credits": self.conn.credits.statistics(),
        }


def _is_error(status: int) -> bool:
    return (status >> 30) == 3
