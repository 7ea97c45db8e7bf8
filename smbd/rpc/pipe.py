"""A DCE/RPC association over a message-mode named pipe, sans-IO.

:class:`RpcAssociation` is the server side of one connection-oriented association
([C706] 9.3, [MS-RPCE] 3.3.1.5): it takes whole PDUs and returns the PDUs that answer them.
Its dispatch is a table by (state, PTYPE); a pair missing from it is a protocol error,
answered with the fault nca_s_proto_error, after which the association is closed.

:class:`NamedPipe` is the server end of one pipe instance as SMB2 sees it ([MS-FSCC]
FilePipeInformation: message mode, full duplex): WRITE feeds bytes (a PDU may arrive in
pieces, several may arrive together), READ takes at most one message (one PDU) at a time,
leaving the rest of a message that did not fit for the next READ. Memory is bounded: a
fragment may not exceed the negotiated size, a fragmented request may not exceed
``max_request`` bytes of stub, and unread output may not exceed ``max_output``; past
those the pipe answers a fault and disconnects (the SMB connection is not concerned).
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, NamedTuple

from smbd.rpc import pdu
from smbd.rpc.ndr import NdrReader
from smbd.rpc.pdu import Fault, ParseError, PType, Result, ResultReason

__all__ = [
    "Interface",
    "NamedPipe",
    "PipeDisconnected",
    "PipeLimits",
    "RpcAssociation",
    "RpcFault",
    "ServerEnv",
    "ShareEntry",
]

log = logging.getLogger("smbd.rpc")

_FRAG_LENGTH: Final = struct.Struct("<H")
MUST_RECV_FRAG_SIZE: Final = 1432  # [C706] 12.6.3.1: every implementation receives this much


# -- what the interfaces serve ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShareEntry:
    """A share as srvsvc reports it ([MS-SRVS] 2.2.4.22 SHARE_INFO_2 fields)."""

    name: str
    type: int  # STYPE_*
    comment: str = ""
    path: str = ""
    flags: int = 0  # SHI1005_FLAGS_*


@dataclass(frozen=True, slots=True)
class ServerEnv:
    """The server as the RPC interfaces describe it, taken when a call runs."""

    server_name: str
    shares: tuple[ShareEntry, ...] = ()
    comment: str = ""
    domain: str = "WORKGROUP"
    version: tuple[int, int] = (10, 0)


class RpcFault(Exception):
    """An operation fails with a fault PDU rather than a response."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message or f"fault 0x{status:08x}")
        self.status = status


Operation = Callable[[NdrReader, ServerEnv], bytes]


@dataclass(frozen=True, slots=True)
class Interface:
    """An RPC interface: its abstract syntax and its operations by opnum. An operation
    decodes its [in] parameters from the reader (raising NdrError on bad stub data) and
    returns the NDR of its [out] parameters and return value."""

    name: str
    syntax: pdu.SyntaxId
    operations: Mapping[int, Operation] = field(default_factory=dict)


class PipeLimits(NamedTuple):
    max_frag: int = 4280  # the largest fragment received or sent (Windows' 4280)
    max_request: int = 256 * 1024  # stub bytes of one (reassembled) request
    max_output: int = 1024 * 1024  # unread response bytes


DEFAULT_LIMITS: Final = PipeLimits()


# -- the association -----------------------------------------------------------------------------


class State(Enum):
    UNBOUND = "unbound"
    BOUND = "bound"
    CLOSED = "closed"


class _Call:
    __slots__ = ("call_id", "chunks", "context_id", "opnum", "size")

    def __init__(self, call_id: int, context_id: int, opnum: int) -> None:
        self.call_id = call_id
        self.context_id = context_id
        self.opnum = opnum
        self.chunks: list[bytes] = []
        self.size = 0


class RpcAssociation:
    """The server side of one association; ``receive(pdu)`` -> PDUs to send."""

    def __init__(
        self,
        interfaces: Sequence[Interface],
        *,
        sec_addr: str,
        env: Callable[[], ServerEnv],
        limits: PipeLimits = DEFAULT_LIMITS,
        assoc_group_id: int = 0x12345678,
    ) -> None:
        self._interfaces = {(i.syntax.uuid, i.syntax.major, i.syntax.minor): i for i in interfaces}
        self.sec_addr = sec_addr
        self._env = env
        self.limits = limits
        self.assoc_group_id = assoc_group_id
        self.state = State.UNBOUND
        self.max_xmit_frag = limits.max_frag  # what we send
        self.max_recv_frag = limits.max_frag  # what we accept
        self.contexts: dict[int, Interface] = {}
        self._call: _Call | None = None
        self.calls = 0
        self.faults = 0

    def statistics(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "contexts": len(self.contexts),
            "calls": self.calls,
            "faults": self.faults,
        }

    def receive(self, raw: memoryview) -> list[bytes]:
        """One whole PDU (``frag_length`` bytes) in, the PDUs that answer it out. A
        protocol error answers a fault and closes the association."""
        whole = len(raw) >= pdu.HEADER_SIZE
        call_id = int.from_bytes(raw[12:16], "little") if whole else 0
        if whole and raw[2] == PType.BIND and self.state is State.UNBOUND and raw[0] > 5:
            # [C706] 12.6.4.5: a bind for a version this server does not speak
            self.state = State.CLOSED
            reason = pdu.RejectReason.PROTOCOL_VERSION_NOT_SUPPORTED
            return [pdu.pack_bind_nak(call_id, reason)]
        try:
            h = pdu.parse_header(raw)
            call_id = h.call_id
            handler = _TABLE.get((self.state, h.ptype))
            if handler is None:
                raise ParseError(f"{_ptype_name(h.ptype)} in state {self.state.value}")
            return handler(self, raw, h)
        except ParseError as exc:
            self.faults += 1
            log.info("rpc %s: fault 0x%08x: %s", self.sec_addr, exc.fault, exc)
            if exc.disconnect:
                self.state = State.CLOSED
                self._call = None
            ctx = self._call.context_id if self._call is not None else 0
            if not exc.disconnect:
                self._call = None
            return [pdu.pack_fault(call_id, exc.fault, context_id=ctx, did_not_execute=True)]

    # -- bind and alter_context ([MS-RPCE] 3.3.1.5.3, 3.3.1.5.4) --------------------------

    def _negotiate(self, b: pdu.Bind) -> list[pdu.ContextResult]:
        results = []
        for c in b.contexts:
            results.append(self._negotiate_context(c))
        return results

    def _negotiate_context(self, c: pdu.ContextElem) -> pdu.ContextResult:
        if any(t.uuid.bytes_le[:8] == pdu.BIND_TIME_FEATURE_PREFIX for t in c.transfers):
            # [MS-RPCE] 3.3.1.5.3: bind-time feature negotiation is answered with
            # negotiate_ack and the features this server supports (none) in the reason.
            return pdu.ContextResult(Result.NEGOTIATE_ACK, 0)
        iface = self._interfaces.get((c.abstract.uuid, c.abstract.major, c.abstract.minor))
        if iface is None:
            return pdu.ContextResult(
                Result.PROVIDER_REJECTION, ResultReason.ABSTRACT_SYNTAX_NOT_SUPPORTED
            )
        if pdu.NDR32 not in c.transfers:
            return pdu.ContextResult(
                Result.PROVIDER_REJECTION, ResultReason.PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED
            )
        known = self.contexts.get(c.context_id)
        if known is not None and known is not iface:
            # [MS-RPCE] 3.3.1.5.4: a context id may not change its abstract syntax
            return pdu.ContextResult(Result.PROVIDER_REJECTION, ResultReason.NOT_SPECIFIED)
        if known is None and len(self.contexts) >= 16:
            return pdu.ContextResult(Result.PROVIDER_REJECTION, ResultReason.LOCAL_LIMIT_EXCEEDED)
        self.contexts[c.context_id] = iface
        return pdu.ContextResult(Result.ACCEPTANCE, 0, pdu.NDR32)

    def _on_bind(self, raw: memoryview, h: pdu.Header) -> list[bytes]:
        if h.auth_length:
            self.state = State.CLOSED
            return [
                pdu.pack_bind_nak(h.call_id, pdu.RejectReason.AUTHENTICATION_TYPE_NOT_RECOGNIZED)
            ]
        b = pdu.parse_bind(raw)
        if b.max_xmit_frag < MUST_RECV_FRAG_SIZE or b.max_recv_frag < MUST_RECV_FRAG_SIZE:
            self.state = State.CLOSED
            return [pdu.pack_bind_nak(h.call_id, pdu.RejectReason.LOCAL_LIMIT_EXCEEDED)]
        self.max_xmit_frag = min(b.max_recv_frag, self.limits.max_frag) & ~7
        self.max_recv_frag = min(b.max_xmit_frag, self.limits.max_frag) & ~7
        results = self._negotiate(b)
        self.state = State.BOUND
        return [
            pdu.pack_bind_ack(
                h.call_id,
                max_xmit_frag=self.max_xmit_frag,
                max_recv_frag=self.max_recv_frag,
                assoc_group_id=b.assoc_group_id or self.assoc_group_id,
                sec_addr=self.sec_addr,
                results=results,
            )
        ]

    def _on_alter_context(self, raw: memoryview, h: pdu.Header) -> list[bytes]:
        b = pdu.parse_bind(raw, PType.ALTER_CONTEXT)
        results = self._negotiate(b)
        return [
            pdu.pack_bind_ack(
                h.call_id,
                max_xmit_frag=self.max_xmit_frag,
                max_recv_frag=self.max_recv_frag,
                assoc_group_id=b.assoc_group_id or self.assoc_group_id,
                sec_addr="",
                results=results,
                ptype=PType.ALTER_CONTEXT_RESP,
            )
        ]

    # -- requests ([MS-RPCE] 3.3.1.5.6, fragments [C706] 12.6.3.7) --------------------------

    def _on_request(self, raw: memoryview, h: pdu.Header) -> list[bytes]:
        r = pdu.parse_request(raw)
        first = bool(h.flags & pdu.PfcFlags.FIRST_FRAG)
        call = self._call
        if call is None:
            if not first:
                raise ParseError(f"call {h.call_id}: a fragment without the first one")
            if r.alloc_hint > self.limits.max_request:
                raise ParseError(f"call {h.call_id}: alloc_hint {r.alloc_hint} is too large")
            call = self._call = _Call(h.call_id, r.context_id, r.opnum)
        elif first or h.call_id != call.call_id:
            raise ParseError(f"call {h.call_id} while call {call.call_id} is incomplete")
        elif r.context_id != call.context_id or r.opnum != call.opnum:
            raise ParseError(f"call {h.call_id}: fragments disagree on context or opnum")
        call.size += len(r.stub)
        if call.size > self.limits.max_request:
            raise ParseError(f"call {h.call_id}: request of more than {self.limits.max_request}")
        call.chunks.append(bytes(r.stub))
        if not h.flags & pdu.PfcFlags.LAST_FRAG:
            return []
        return self._execute(call)

    def _execute(self, call: _Call) -> list[bytes]:
        self.calls += 1
        iface = self.contexts.get(call.context_id)
        if iface is None:
            raise ParseError(
                f"call {call.call_id}: unknown context {call.context_id}",
                Fault.NCA_S_UNK_IF,
                disconnect=False,
            )
        op = iface.operations.get(call.opnum)
        if op is None:
            raise ParseError(
                f"{iface.name} opnum {call.opnum}", Fault.NCA_S_OP_RNG_ERROR, disconnect=False
            )
        stub = b"".join(call.chunks) if len(call.chunks) != 1 else call.chunks[0]
        try:
            out = op(NdrReader(stub), self._env())
        except RpcFault as exc:
            raise ParseError(str(exc), exc.status, disconnect=False) from exc
        self._call = None
        return list(
            pdu.pack_response_fragments(call.call_id, call.context_id, out, self.max_xmit_frag)
        )

    def _on_orphaned(self, raw: memoryview, h: pdu.Header) -> list[bytes]:
        """[MS-RPCE] 2.2.2.1 orphaned: the client gave up on a fragmented request."""
        if self._call is not None and self._call.call_id == h.call_id:
            self._call = None
        return []

    def _on_co_cancel(self, raw: memoryview, h: pdu.Header) -> list[bytes]:
        """Calls run to completion as soon as their last fragment arrives: nothing to
        cancel ([C706] 12.6.4.6 co_cancel is advisory)."""
        return []


Handler = Callable[[RpcAssociation, memoryview, pdu.Header], list[bytes]]

_TABLE: dict[tuple[State, int], Handler] = {
    (State.UNBOUND, PType.BIND): RpcAssociation._on_bind,
    (State.BOUND, PType.ALTER_CONTEXT): RpcAssociation._on_alter_context,
    (State.BOUND, PType.REQUEST): RpcAssociation._on_request,
    (State.BOUND, PType.ORPHANED): RpcAssociation._on_orphaned,
    (State.BOUND, PType.CO_CANCEL): RpcAssociation._on_co_cancel,
}


def _ptype_name(ptype: int) -> str:
    try:
        return PType(ptype).name.lower()
    except ValueError:
        return f"PTYPE {ptype}"


# -- the pipe ------------------------------------------------------------------------------------


class PipeDisconnected(Exception):
    """The pipe's server end closed after a fatal fault: STATUS_PIPE_DISCONNECTED."""


class NamedPipe:
    """The server end of one message-mode pipe instance carrying one association."""

    __slots__ = ("_head", "_inbuf", "_output", "assoc", "bytes_in", "bytes_out", "output_bytes")

    def __init__(self, assoc: RpcAssociation) -> None:
        self.assoc = assoc
        self._inbuf = bytearray()  # a PDU that has not fully arrived (at most one fragment)
        self._output: deque[bytes] = deque()  # messages waiting for READ
        self._head = 0  # how much of the first message READ already took
        self.output_bytes = 0
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def disconnected(self) -> bool:
        return self.assoc.state is State.CLOSED

    @property
    def readable(self) -> bool:
        return bool(self._output)

    def available(self) -> int:
        """Bytes of the current message still to read ([MS-FSCC] ReadDataAvailable)."""
        return len(self._output[0]) - self._head if self._output else 0

    def statistics(self) -> dict[str, Any]:
        return {
            **self.assoc.statistics(),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "pending_output": self.output_bytes,
        }

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Bytes from the client (a WRITE or a TRANSCEIVE's input). Complete PDUs are
        processed now; their answers become readable messages."""
        if self.disconnected:
            raise PipeDisconnected("the pipe was disconnected after a fault")
        view = memoryview(data).cast("B")
        self.bytes_in += len(view)
        if self._inbuf:
            self._inbuf += view
            view = memoryview(bytes(self._inbuf))
            self._inbuf.clear()
        off = 0
        while off < len(view) and not self.disconnected:
            rest = len(view) - off
            if rest < pdu.HEADER_SIZE:
                self._inbuf += view[off:]
                break
            (frag_length,) = _FRAG_LENGTH.unpack_from(view, off + 8)
            if frag_length < pdu.HEADER_SIZE or frag_length > self.assoc.max_recv_frag:
                self._fatal(view[off:], f"fragment of {frag_length} bytes")
                break
            if rest < frag_length:
                self._inbuf += view[off:]
                break
            if self.output_bytes > self.assoc.limits.max_output:
                self._fatal(view[off:], f"{self.output_bytes} bytes of output not read")
                break
            for out in self.assoc.receive(view[off : off + frag_length]):
                self._emit(out)
            off += frag_length
        return len(data)

    def _fatal(self, raw: memoryview, why: str) -> None:
        call_id = int.from_bytes(raw[12:16], "little") if len(raw) >= 16 else 0
        log.info("rpc %s: %s, disconnecting the pipe", self.assoc.sec_addr, why)
        self.assoc.state = State.CLOSED
        self.assoc.faults += 1
        self._inbuf.clear()
        self._emit(pdu.pack_fault(call_id, Fault.NCA_S_PROTO_ERROR, did_not_execute=True))

    def _emit(self, message: bytes) -> None:
        self._output.append(message)
        self.output_bytes += len(message)

    def read(self, length: int) -> tuple[bytes, bool]:
        """Up to ``length`` bytes of the current message, and whether some of that message
        is left (STATUS_BUFFER_OVERFLOW). Empty when nothing is waiting."""
        if not self._output:
            return b"", False
        msg = self._output[0]
        end = min(len(msg), self._head + length)
        data = msg[self._head : end]
        if end >= len(msg):
            self._output.popleft()
            self._head = 0
            more = False
        else:
            self._head = end
            more = True
        self.output_bytes -= len(data)
        self.bytes_out += len(data)
        return data, more
