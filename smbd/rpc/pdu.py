"""DCE/RPC connection-oriented PDUs ([C706] 12.6, [MS-RPCE] 2.2.2): the common header,
bind / alter_context and their replies, request, response and fault. Pure codec, no state.

Only what an SMB2 named pipe needs is accepted: version 5.0 or 5.1, little-endian ASCII
IEEE data representation, and auth_length 0 (the SMB session already authenticated the
caller; a PDU carrying an auth verifier is refused). Every length is checked against the
buffer; a PDU that does not parse raises :class:`ParseError` with the fault status the
server answers it with.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator, Sequence
from enum import IntEnum, IntFlag
from typing import Final, NamedTuple

__all__ = [
    "BIND_TIME_FEATURE_PREFIX",
    "HEADER_SIZE",
    "NDR32",
    "NDR64",
    "Bind",
    "ContextElem",
    "ContextResult",
    "Fault",
    "Header",
    "PType",
    "ParseError",
    "PfcFlags",
    "RejectReason",
    "Request",
    "Result",
    "ResultReason",
    "SyntaxId",
    "pack_bind",
    "pack_bind_ack",
    "pack_bind_nak",
    "pack_fault",
    "pack_request",
    "pack_response_fragments",
    "parse_bind",
    "parse_bind_ack",
    "parse_header",
    "parse_request",
    "parse_response",
]

Buffer = bytes | bytearray | memoryview


class PType(IntEnum):
    """[C706] 12.6.4 PDU types (connection-oriented ones)."""

    REQUEST = 0
    RESPONSE = 2
    FAULT = 3
    BIND = 11
    BIND_ACK = 12
    BIND_NAK = 13
    ALTER_CONTEXT = 14
    ALTER_CONTEXT_RESP = 15
    AUTH3 = 16
    SHUTDOWN = 17
    CO_CANCEL = 18
    ORPHANED = 19


class PfcFlags(IntFlag):
    """[C706] 12.6.3.1 pfc_flags; [MS-RPCE] 2.2.2.3 reuses PENDING_CANCEL in bind as
    SUPPORT_HEADER_SIGN."""

    FIRST_FRAG = 0x01
    LAST_FRAG = 0x02
    PENDING_CANCEL = 0x04
    CONC_MPX = 0x10
    DID_NOT_EXECUTE = 0x20
    MAYBE = 0x40
    OBJECT_UUID = 0x80


class Fault(IntEnum):
    """Fault statuses ([C706] Appendix E, [MS-RPCE] 2.2.2.11 / 3.1.1.5.5)."""

    NCA_S_OP_RNG_ERROR = 0x1C010002
    NCA_S_UNK_IF = 0x1C010003
    NCA_S_PROTO_ERROR = 0x1C01000B
    NCA_S_UNSUPPORTED_TYPE = 0x1C010017  # unsupported authentication or PDU type
    NCA_S_FAULT_NDR = 0x000006F7  # RPC_X_BAD_STUB_DATA: the stub does not decode
    NCA_S_FAULT_CONTEXT_MISMATCH = 0x1C00001A
    RPC_S_ACCESS_DENIED = 0x00000005


class Result(IntEnum):
    """[C706] 12.6.3.1 p_cont_def_result_t, [MS-RPCE] 2.2.2.4 negotiate_ack."""

    ACCEPTANCE = 0
    USER_REJECTION = 1
    PROVIDER_REJECTION = 2
    NEGOTIATE_ACK = 3


class ResultReason(IntEnum):
    """[C706] 12.6.3.1 p_provider_reason_t."""

    NOT_SPECIFIED = 0
    ABSTRACT_SYNTAX_NOT_SUPPORTED = 1
    PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED = 2
    LOCAL_LIMIT_EXCEEDED = 3


class RejectReason(IntEnum):
    """[C706] 12.6.3.1 p_reject_reason_t (bind_nak)."""

    NOT_SPECIFIED = 0
    TEMPORARY_CONGESTION = 1
    LOCAL_LIMIT_EXCEEDED = 2
    PROTOCOL_VERSION_NOT_SUPPORTED = 4
    AUTHENTICATION_TYPE_NOT_RECOGNIZED = 8


class ParseError(Exception):
    """A PDU (or its stub) that cannot be accepted. ``fault`` is the status of the fault
    PDU that answers it; ``disconnect`` says the association cannot go on (framing lost or
    a protocol error: [MS-RPCE] 3.3.1.5.x closes the connection after the fault)."""

    def __init__(
        self, message: str, fault: int = Fault.NCA_S_PROTO_ERROR, *, disconnect: bool = True
    ) -> None:
        super().__init__(message)
        self.fault = fault
        self.disconnect = disconnect


class SyntaxId(NamedTuple):
    """[C706] 12.6.3.1 p_syntax_id_t: an interface or transfer syntax and its version
    (major in the low 16 bits, minor in the high 16 bits of if_version)."""

    uuid: uuid.UUID
    major: int
    minor: int = 0

    def pack(self) -> bytes:
        return self.uuid.bytes_le + _SYNTAX_VERS.pack(self.major, self.minor)

    def __str__(self) -> str:
        return f"{self.uuid} v{self.major}.{self.minor}"


NDR32: Final = SyntaxId(uuid.UUID("8a885d04-1ceb-11c9-9fe8-08002b104860"), 2)
NDR64: Final = SyntaxId(uuid.UUID("71710533-beba-4937-8319-b5dbef9ccc36"), 1)
# [MS-RPCE] 3.3.1.5.3: 6cb71c2c-9812-4540-<16-bit><48-bit> version 1.0; the last 8 bytes
# of the UUID (as laid out on the wire) carry the client's feature bitmask.
BIND_TIME_FEATURE_PREFIX: Final = uuid.UUID("6cb71c2c-9812-4540-0000-000000000000").bytes_le[:8]
NULL_SYNTAX: Final = SyntaxId(uuid.UUID(int=0), 0)

HEADER_SIZE: Final = 16
# rpc_vers rpc_vers_minor PTYPE pfc_flags packed_drep[4] frag_length auth_length call_id
_HEADER: Final = struct.Struct("<BBBB4sHHI")
_DREP_LE: Final = b"\x10\x00\x00\x00"  # little-endian integers, ASCII, IEEE floats
_SYNTAX_VERS: Final = struct.Struct("<HH")
_SYNTAX: Final = struct.Struct("<16sHH")
_BIND: Final = struct.Struct("<HHIB3x")  # max_xmit_frag max_recv_frag assoc_group n_ctx
_CTX: Final = struct.Struct("<HBx")  # p_cont_id n_transfer_syn reserved
_REQUEST: Final = struct.Struct("<IHH")  # alloc_hint p_cont_id opnum
_RESPONSE: Final = struct.Struct("<IHBx")  # alloc_hint p_cont_id cancel_count reserved
_FAULT: Final = struct.Struct("<IHBxI4x")  # ... status reserved
_RESULT: Final = struct.Struct("<HH")
_ACK_FIXED: Final = struct.Struct("<HHIH")  # max_xmit max_recv assoc_group sec_addr.length


class Header(NamedTuple):
    """[C706] 12.6.3.1 the common fields of every connection-oriented PDU."""

    ptype: int
    flags: int
    frag_length: int
    auth_length: int
    call_id: int
    minor: int = 0


class ContextElem(NamedTuple):
    """[C706] 12.6.3.1 p_cont_elem_t: one presentation context a client proposes."""

    context_id: int
    abstract: SyntaxId
    transfers: tuple[SyntaxId, ...]


class Bind(NamedTuple):
    """[C706] 12.6.4.3 bind (also 12.6.4.1 alter_context, which has the same body)."""

    header: Header
    max_xmit_frag: int
    max_recv_frag: int
    assoc_group_id: int
    contexts: tuple[ContextElem, ...]


class ContextResult(NamedTuple):
    """[C706] 12.6.3.1 p_result_t."""

    result: int
    reason: int
    transfer: SyntaxId = NULL_SYNTAX


class Request(NamedTuple):
    """[C706] 12.6.4.9 request."""

    header: Header
    alloc_hint: int
    context_id: int
    opnum: int
    object: uuid.UUID | None
    stub: memoryview


def parse_header(buf: Buffer) -> Header:
    """The common header; checks version, data representation, and that frag_length
    covers at least the header. The caller checks frag_length against what it holds."""
    if len(buf) < HEADER_SIZE:
        raise ParseError(f"PDU of {len(buf)} bytes is shorter than the header")
    vers, minor, ptype, flags, drep, frag_length, auth_length, call_id = _HEADER.unpack_from(buf, 0)
    if vers != 5 or minor > 1:
        raise ParseError(f"RPC version {vers}.{minor}")
    if drep[0] != _DREP_LE[0] or drep[1] != 0:
        raise ParseError(f"data representation {drep.hex()} (only little-endian ASCII IEEE)")
    if frag_length < HEADER_SIZE:
        raise ParseError(f"frag_length {frag_length}")
    return Header(ptype, flags, frag_length, auth_length, call_id, minor)


def _pdu(buf: Buffer, ptype: int) -> tuple[Header, memoryview]:
    view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf.cast("B")
    h = parse_header(view)
    if h.ptype != ptype:
        raise ParseError(f"PTYPE {h.ptype} where {PType(ptype).name} was expected")
    if h.frag_length != len(view):
        raise ParseError(f"frag_length {h.frag_length} for a PDU of {len(view)} bytes")
    if h.auth_length:
        raise ParseError(f"auth_length {h.auth_length}: no RPC-level authentication here")
    return h, view


def _syntax(view: memoryview, off: int) -> SyntaxId:
    raw, major, minor = _SYNTAX.unpack_from(view, off)
    return SyntaxId(uuid.UUID(bytes_le=raw), major, minor)


def parse_bind(buf: Buffer, ptype: int = PType.BIND) -> Bind:
    """bind or alter_context ([C706] 12.6.4.3 / 12.6.4.1)."""
    h, view = _pdu(buf, ptype)
    end = len(view)
    off = HEADER_SIZE
    if off + _BIND.size > end:
        raise ParseError("bind shorter than its fixed part")
    max_xmit, max_recv, assoc, n_ctx = _BIND.unpack_from(view, off)
    off += _BIND.size
    contexts = []
    for _ in range(n_ctx):
        if off + _CTX.size + _SYNTAX.size > end:
            raise ParseError("presentation context beyond the PDU")
        ctx_id, n_ts = _CTX.unpack_from(view, off)
        abstract = _syntax(view, off + _CTX.size)
        off += _CTX.size + _SYNTAX.size
        if n_ts == 0:
            raise ParseError(f"presentation context {ctx_id} without transfer syntaxes")
        if off + n_ts * _SYNTAX.size > end:
            raise ParseError("transfer syntaxes beyond the PDU")
        transfers = tuple(_syntax(view, off + i * _SYNTAX.size) for i in range(n_ts))
        off += n_ts * _SYNTAX.size
        contexts.append(ContextElem(ctx_id, abstract, transfers))
    return Bind(h, max_xmit, max_recv, assoc, tuple(contexts))


def parse_request(buf: Buffer) -> Request:
    """[C706] 12.6.4.9 request; the stub is a view into ``buf``."""
    h, view = _pdu(buf, PType.REQUEST)
    off = HEADER_SIZE + _REQUEST.size
    if off > len(view):
        raise ParseError("request shorter than its fixed part")
    alloc_hint, ctx_id, opnum = _REQUEST.unpack_from(view, HEADER_SIZE)
    obj = None
    if h.flags & PfcFlags.OBJECT_UUID:
        if off + 16 > len(view):
            raise ParseError("object UUID beyond the PDU")
        obj = uuid.UUID(bytes_le=bytes(view[off : off + 16]))
        off += 16
    return Request(h, alloc_hint, ctx_id, opnum, obj, view[off:])


def _header(ptype: int, flags: int, length: int, call_id: int) -> bytes:
    return _HEADER.pack(5, 0, ptype, flags, _DREP_LE, length, 0, call_id)


def _pack_contexts(contexts: Sequence[ContextElem]) -> bytes:
    parts = [struct.pack("<B3x", len(contexts))]
    for c in contexts:
        parts.append(_CTX.pack(c.context_id, len(c.transfers)))
        parts.append(c.abstract.pack())
        parts.extend(t.pack() for t in c.transfers)
    return b"".join(parts)


def pack_bind(
    call_id: int,
    contexts: Sequence[ContextElem],
    *,
    max_xmit_frag: int = 4280,
    max_recv_frag: int = 4280,
    assoc_group_id: int = 0,
    ptype: int = PType.BIND,
    flags: int = PfcFlags.FIRST_FRAG | PfcFlags.LAST_FRAG,
) -> bytes:
    """A client's bind or alter_context (tests and tools)."""
    body = struct.pack("<HHI", max_xmit_frag, max_recv_frag, assoc_group_id)
    body += _pack_contexts(contexts)
    return _header(ptype, flags, HEADER_SIZE + len(body), call_id) + body


def pack_bind_ack(
    call_id: int,
    *,
    max_xmit_frag: int,
    max_recv_frag: int,
    assoc_group_id: int,
    sec_addr: str,
    results: Sequence[ContextResult],
    ptype: int = PType.BIND_ACK,
) -> bytes:
    """[C706] 12.6.4.4 bind_ack / 12.6.4.2 alter_context_resp. ``sec_addr`` is the
    secondary address (the pipe name, ``\\PIPE\\srvsvc``; empty in alter_context_resp),
    written with its NUL and padded so that the result list starts 4-aligned."""
    addr = sec_addr.encode("ascii") + b"\0" if sec_addr else b""
    fixed = _ACK_FIXED.pack(max_xmit_frag, max_recv_frag, assoc_group_id, len(addr))
    pad = -(HEADER_SIZE + len(fixed) + len(addr)) % 4
    parts = [fixed, addr, bytes(pad), struct.pack("<B3x", len(results))]
    for r in results:
        parts.append(_RESULT.pack(r.result, r.reason))
        parts.append(r.transfer.pack())
    body = b"".join(parts)
    flags = PfcFlags.FIRST_FRAG | PfcFlags.LAST_FRAG
    return _header(ptype, flags, HEADER_SIZE + len(body), call_id) + body


def pack_bind_nak(call_id: int, reason: int) -> bytes:
    """[C706] 12.6.4.5 bind_nak: the reject reason and the one protocol version served
    (5.0), padded to a multiple of 4 as Windows and Samba send it."""
    body = struct.pack("<HBBB3x", reason, 1, 5, 0)
    flags = PfcFlags.FIRST_FRAG | PfcFlags.LAST_FRAG
    return _header(PType.BIND_NAK, flags, HEADER_SIZE + len(body), call_id) + body


def pack_request(
    call_id: int,
    context_id: int,
    opnum: int,
    stub: Buffer,
    *,
    alloc_hint: int | None = None,
    flags: int = PfcFlags.FIRST_FRAG | PfcFlags.LAST_FRAG,
) -> bytes:
    """One request fragment (tests and tools)."""
    hint = len(stub) if alloc_hint is None else alloc_hint
    body = _REQUEST.pack(hint, context_id, opnum) + bytes(stub)
    return _header(PType.REQUEST, flags, HEADER_SIZE + len(body), call_id) + body


def pack_response_fragments(
    call_id: int, context_id: int, stub: Buffer, max_xmit_frag: int
) -> Iterator[bytes]:
    """[C706] 12.6.4.10 response, split into fragments of at most ``max_xmit_frag`` bytes.
    The stub of every fragment but the last is a multiple of 8 bytes, and alloc_hint is
    what remains of the stub from this fragment on."""
    view = memoryview(stub)
    room = (max_xmit_frag - HEADER_SIZE - _RESPONSE.size) & ~7
    if room <= 0:
        raise ValueError(f"max_xmit_frag {max_xmit_frag} leaves no room for a stub")
    total = len(view)
    off = 0
    while True:
        chunk = view[off : off + room]
        flags = PfcFlags.FIRST_FRAG if off == 0 else 0
        if off + len(chunk) >= total:
            flags |= PfcFlags.LAST_FRAG
        length = HEADER_SIZE + _RESPONSE.size + len(chunk)
        yield (
            _header(PType.RESPONSE, flags, length, call_id)
            + _RESPONSE.pack(total - off, context_id, 0)
            + bytes(chunk)
        )
        off += len(chunk)
        if off >= total:
            return


def pack_fault(
    call_id: int, status: int, *, context_id: int = 0, did_not_execute: bool = False
) -> bytes:
    """[C706] 12.6.4.7 fault ([MS-RPCE] 2.2.2.11). ``did_not_execute``: the call never
    reached the server routine (unknown interface, opnum out of range, bad stub)."""
    flags = PfcFlags.FIRST_FRAG | PfcFlags.LAST_FRAG
    if did_not_execute:
        flags |= PfcFlags.DID_NOT_EXECUTE
    body = _FAULT.pack(0, context_id, 0, status)
    return _header(PType.FAULT, flags, HEADER_SIZE + len(body), call_id) + body


# -- client side of the replies (tests and tools) -------------------------------------------


class BindAck(NamedTuple):
    header: Header
    max_xmit_frag: int
    max_recv_frag: int
    assoc_group_id: int
    sec_addr: str
    results: tuple[ContextResult, ...]


def parse_bind_ack(buf: Buffer, ptype: int = PType.BIND_ACK) -> BindAck:
    """bind_ack or alter_context_resp, as a client reads it."""
    h, view = _pdu(buf, ptype)
    end = len(view)
    if HEADER_SIZE + _ACK_FIXED.size > end:
        raise ParseError("bind_ack shorter than its fixed part")
    max_xmit, max_recv, assoc, addr_len = _ACK_FIXED.unpack_from(view, HEADER_SIZE)
    off = HEADER_SIZE + _ACK_FIXED.size
    if off + addr_len > end:
        raise ParseError("secondary address beyond the PDU")
    addr = bytes(view[off : off + addr_len]).rstrip(b"\0")
    try:
        sec_addr = addr.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ParseError("secondary address is not ASCII") from exc
    off += addr_len
    off += -off % 4
    if off + 4 > end:
        raise ParseError("result list beyond the PDU")
    n = view[off]
    off += 4
    if off + n * (_RESULT.size + _SYNTAX.size) > end:
        raise ParseError("results beyond the PDU")
    results = []
    for _ in range(n):
        result, reason = _RESULT.unpack_from(view, off)
        results.append(ContextResult(result, reason, _syntax(view, off + _RESULT.size)))
        off += _RESULT.size + _SYNTAX.size
    return BindAck(h, max_xmit, max_recv, assoc, sec_addr, tuple(results))


class Response(NamedTuple):
    header: Header
    alloc_hint: int
    context_id: int
    cancel_count: int
    stub: memoryview


def parse_response(buf: Buffer) -> Response:
    """[C706] 12.6.4.10 response, as a client reads it."""
    h, view = _pdu(buf, PType.RESPONSE)
    if HEADER_SIZE + _RESPONSE.size > len(view):
        raise ParseError("response shorter than its fixed part")
    hint, ctx, cancels = _RESPONSE.unpack_from(view, HEADER_SIZE)
    return Response(h, hint, ctx, cancels, view[HEADER_SIZE + _RESPONSE.size :])


def parse_fault(buf: Buffer) -> int:
    """[C706] 12.6.4.7 fault: its status."""
    _h, view = _pdu(buf, PType.FAULT)
    if HEADER_SIZE + _FAULT.size > len(view):
        raise ParseError("fault shorter than its fixed part")
    return int(_FAULT.unpack_from(view, HEADER_SIZE)[3])
