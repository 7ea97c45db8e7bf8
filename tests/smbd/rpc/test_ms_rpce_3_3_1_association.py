"""[MS-RPCE] 3.3.1.5 server association behaviour over a message-mode pipe: bind and
context negotiation, calls, fragmented requests and responses, faults, and the limits
that keep a pipe's memory bounded."""

from __future__ import annotations

import struct
import uuid

from smbd.rpc import ENDPOINTS, pdu
from smbd.rpc.pdu import NDR32, NDR64, ContextElem, Fault, PfcFlags, PType, Result, SyntaxId
from smbd.rpc.pipe import (
    DEFAULT_LIMITS,
    NamedPipe,
    PipeLimits,
    RpcAssociation,
    ServerEnv,
    ShareEntry,
    State,
)
from smbd.rpc.srvsvc import SYNTAX as SRVSVC
from smbd.rpc.wkssvc import SYNTAX as WKSSVC
from tests.smbd.rpc import vectors

ENV = ServerEnv(
    "VMSTOR",
    (
        ShareEntry("share", 0),
        ShareEntry("secure", 0),
        ShareEntry("IPC$", 0x80000003, "IPC Service (interop samba)"),
    ),
)
BTFN = SyntaxId(uuid.UUID("6cb71c2c-9812-4540-0300-000000000000"), 1)
UNKNOWN = SyntaxId(uuid.UUID("12345778-1234-abcd-ef00-0123456789ab"), 0)


def make_pipe(limits: PipeLimits = DEFAULT_LIMITS, env: ServerEnv = ENV) -> NamedPipe:
    assoc = RpcAssociation(
        ENDPOINTS["srvsvc"], sec_addr="\\PIPE\\srvsvc", env=lambda: env, limits=limits
    )
    return NamedPipe(assoc)


def read_all(p: NamedPipe) -> list[bytes]:
    out = []
    while p.readable:
        data, more = p.read(1 << 20)
        assert not more
        out.append(data)
    return out


def bound_pipe(**kw: object) -> NamedPipe:
    p = make_pipe(**kw)  # type: ignore[arg-type]
    p.write(vectors.SMBCLIENT_BIND)
    (ack,) = read_all(p)
    assert pdu.parse_bind_ack(ack).results[0].result == Result.ACCEPTANCE
    return p


def renumber(stub: bytes, delta: int) -> bytes:
    """Shift every referent id (0x0002xxxx, 4-aligned) by ``delta``."""
    words = list(struct.unpack(f"<{len(stub) // 4}I", stub))
    return struct.pack(
        f"<{len(words)}I", *(w + delta if 0x20000 <= w < 0x20400 else w for w in words)
    )


def test_bind_accepts_ndr_and_answers_pipe_name() -> None:
    p = make_pipe()
    assert p.write(vectors.SMBCLIENT_BIND) == 72
    (ack,) = read_all(p)
    a = pdu.parse_bind_ack(ack)
    assert a.header.call_id == 1
    assert (a.max_xmit_frag, a.max_recv_frag) == (4280, 4280)
    assert a.sec_addr == "\\PIPE\\srvsvc"
    assert a.results == (pdu.ContextResult(Result.ACCEPTANCE, 0, NDR32),)
    # same layout as Samba's answer, but for the association group and the name's case
    assert len(ack) == len(vectors.SAMBA_BIND_ACK)
    assert p.assoc.state is State.BOUND


def test_net_share_enum_stub_equals_sambas() -> None:
    """Our NetrShareEnum answer to smbclient's request, for Samba's shares, is Samba's
    answer byte for byte (referent ids are arbitrary; Samba's start 12 higher)."""
    p = bound_pipe()
    p.write(vectors.SMBCLIENT_SHARE_ENUM)
    (resp,) = read_all(p)
    ours = pdu.parse_response(resp)
    samba = pdu.parse_response(vectors.SAMBA_SHARE_ENUM_RESPONSE)
    assert renumber(bytes(ours.stub), 0xC) == bytes(samba.stub)
    assert resp[:16] == vectors.SAMBA_SHARE_ENUM_RESPONSE[:16]
    assert ours.alloc_hint == samba.alloc_hint


def test_bind_contexts_ndr64_btfn_unknown() -> None:
    """[MS-RPCE] 3.3.1.5.3: NDR64 alone is refused (proposed transfer syntaxes not
    supported), bind-time feature negotiation gets negotiate_ack with no features, an
    unknown interface is refused (abstract syntax not supported)."""
    p = make_pipe()
    p.write(
        pdu.pack_bind(
            1,
            [
                ContextElem(0, SRVSVC, (NDR64,)),
                ContextElem(1, SRVSVC, (NDR64, NDR32)),
                ContextElem(2, SRVSVC, (BTFN,)),
                ContextElem(3, UNKNOWN, (NDR32,)),
                ContextElem(4, WKSSVC, (NDR32,)),  # wkssvc is not on the srvsvc pipe
            ],
        )
    )
    (ack,) = read_all(p)
    results = pdu.parse_bind_ack(ack).results
    assert [(r.result, r.reason) for r in results] == [(2, 2), (0, 0), (3, 0), (2, 1), (2, 1)]
    assert results[1].transfer == NDR32
    assert results[0].transfer.uuid.int == 0
    assert set(p.assoc.contexts) == {1}


def test_bind_nak_for_auth_and_tiny_fragments() -> None:
    p = make_pipe()
    raw = bytearray(pdu.pack_bind(1, [ContextElem(0, SRVSVC, (NDR32,))], max_recv_frag=1024))
    p.write(raw)
    (nak,) = read_all(p)
    assert nak[2] == PType.BIND_NAK
    assert struct.unpack_from("<H", nak, 16)[0] == pdu.RejectReason.LOCAL_LIMIT_EXCEEDED
    assert p.disconnected


def test_bind_of_a_later_version_gets_bind_nak() -> None:
    p = make_pipe()
    p.write(b"\x06" + vectors.SMBCLIENT_BIND[1:])
    (nak,) = read_all(p)
    assert nak == pdu.pack_bind_nak(1, pdu.RejectReason.PROTOCOL_VERSION_NOT_SUPPORTED)
    assert p.disconnected


def test_request_before_bind_is_a_protocol_error() -> None:
    p = make_pipe()
    p.write(vectors.SMBCLIENT_SHARE_ENUM)
    (fault,) = read_all(p)
    assert pdu.parse_fault(fault) == Fault.NCA_S_PROTO_ERROR
    assert pdu.parse_header(fault).call_id == 2
    assert p.disconnected


def test_second_bind_is_a_protocol_error() -> None:
    p = bound_pipe()
    p.write(vectors.SMBCLIENT_BIND)
    (fault,) = read_all(p)
    assert pdu.parse_fault(fault) == Fault.NCA_S_PROTO_ERROR
    assert p.disconnected


def test_unknown_opnum_and_context() -> None:
    p = bound_pipe()
    p.write(pdu.pack_request(3, 0, 99, b""))
    (fault,) = read_all(p)
    assert pdu.parse_fault(fault) == Fault.NCA_S_OP_RNG_ERROR
    assert fault[3] & PfcFlags.DID_NOT_EXECUTE
    p.write(pdu.pack_request(4, 7, 15, b""))
    (fault,) = read_all(p)
    assert pdu.parse_fault(fault) == Fault.NCA_S_UNK_IF
    # the association goes on
    p.write(vectors.SMBCLIENT_SHARE_ENUM)
    (resp,) = read_all(p)
    assert resp[2] == PType.RESPONSE


def test_bad_stub_is_fault_ndr() -> None:
    p = bound_pipe()
    p.write(pdu.pack_request(3, 0, 15, b"\x00\x00\x02"))
    (fault,) = read_all(p)
    assert pdu.parse_fault(fault) == Fault.NCA_S_FAULT_NDR
    assert not p.disconnected


def test_alter_context_adds_wkssvc_context_on_the_same_pipe_only_if_served() -> None:
    p = bound_pipe()
    p.write(pdu.pack_bind(5, [ContextElem(1, SRVSVC, (NDR32,))], ptype=PType.ALTER_CONTEXT))
    (resp,) = read_all(p)
    a = pdu.parse_bind_ack(resp, PType.ALTER_CONTEXT_RESP)
    assert a.sec_addr == ""
    assert a.results[0].result == Result.ACCEPTANCE
    assert set(p.assoc.contexts) == {0, 1}


def test_fragmented_request_is_reassembled() -> None:
    r = pdu.parse_request(vectors.SMBCLIENT_SHARE_ENUM)
    stub = bytes(r.stub)
    p = bound_pipe()
    first = pdu.pack_request(2, 0, 15, stub[:40], alloc_hint=68, flags=PfcFlags.FIRST_FRAG)
    last = pdu.pack_request(2, 0, 15, stub[40:], alloc_hint=28, flags=PfcFlags.LAST_FRAG)
    # the two fragments arrive in three writes that cut through a header
    joined = first + last
    p.write(joined[:50])
    assert not p.readable
    p.write(joined[50:70])
    p.write(joined[70:])
    (resp,) = read_all(p)
    whole = bound_pipe()
    whole.write(vectors.SMBCLIENT_SHARE_ENUM)
    assert resp == read_all(whole)[0]


def test_fragment_of_another_call_is_a_protocol_error() -> None:
    p = bound_pipe()
    p.write(pdu.pack_request(2, 0, 15, b"\0" * 8, flags=PfcFlags.FIRST_FRAG))
    p.write(pdu.pack_request(3, 0, 15, b"\0" * 8, flags=PfcFlags.LAST_FRAG))
    (fault,) = read_all(p)
    assert pdu.parse_fault(fault) == Fault.NCA_S_PROTO_ERROR
    assert p.disconnected


def test_response_is_fragmented_to_max_recv_frag() -> None:
    shares = tuple(ShareEntry(f"share{i:03}", 0, "a comment " * 5) for i in range(60))
    p = make_pipe(env=ServerEnv("VMSTOR", shares))
    p.write(pdu.pack_bind(1, [ContextElem(0, SRVSVC, (NDR32,))], max_recv_frag=1432))
    read_all(p)
    p.write(vectors.SMBCLIENT_SHARE_ENUM)
    frags = read_all(p)
    assert len(frags) > 3
    assert all(len(f) <= 1432 for f in frags)
    assert frags[0][3] == PfcFlags.FIRST_FRAG
    assert frags[-1][3] == PfcFlags.LAST_FRAG
    stub = b"".join(bytes(pdu.parse_response(f).stub) for f in frags)
    from impacket.dcerpc.v5 import srvs

    r = srvs.NetrShareEnumResponse(stub)
    names = [e["shi1_netname"][:-1] for e in r["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"]]
    assert names == [s.name for s in shares]


def test_message_read_in_pieces() -> None:
    p = make_pipe()
    p.write(vectors.SMBCLIENT_BIND)
    head, more = p.read(10)
    assert (len(head), more) == (10, True)
    rest, more = p.read(1000)
    assert (len(rest), more) == (58, False)
    assert not p.readable
    assert p.read(10) == (b"", False)


def test_oversize_fragment_faults_and_disconnects() -> None:
    p = bound_pipe()
    big = pdu.pack_request(2, 0, 15, bytes(5000))
    p.write(big)
    (fault,) = read_all(p)
    assert pdu.parse_fault(fault) == Fault.NCA_S_PROTO_ERROR
    assert p.disconnected


def test_oversize_request_faults_and_disconnects() -> None:
    p = bound_pipe(limits=PipeLimits(max_request=4096))
    chunk = bytes(2048)
    p.write(pdu.pack_request(2, 0, 15, chunk, alloc_hint=0, flags=PfcFlags.FIRST_FRAG))
    p.write(pdu.pack_request(2, 0, 15, chunk, alloc_hint=0, flags=0))
    assert not p.readable
    p.write(pdu.pack_request(2, 0, 15, chunk, alloc_hint=0, flags=0))
    (fault,) = read_all(p)
    assert pdu.parse_fault(fault) == Fault.NCA_S_PROTO_ERROR
    assert p.disconnected
    # and an alloc_hint beyond the limit is refused at the first fragment
    p = bound_pipe(limits=PipeLimits(max_request=4096))
    p.write(pdu.pack_request(2, 0, 15, chunk, alloc_hint=1 << 20, flags=PfcFlags.FIRST_FRAG))
    (fault,) = read_all(p)
    assert pdu.parse_fault(fault) == Fault.NCA_S_PROTO_ERROR


def test_unread_output_is_bounded() -> None:
    p = bound_pipe(limits=PipeLimits(max_output=1000))
    for _ in range(5):  # 276 bytes each: the fifth finds 1104 unread
        p.write(vectors.SMBCLIENT_SHARE_ENUM)
    assert p.disconnected
    assert p.output_bytes <= 1000 + 2 * len(vectors.SAMBA_SHARE_ENUM_RESPONSE)
    frames = read_all(p)
    assert pdu.parse_fault(frames[-1]) == Fault.NCA_S_PROTO_ERROR


def test_orphaned_drops_the_partial_call() -> None:
    p = bound_pipe()
    p.write(pdu.pack_request(2, 0, 15, bytes(8), flags=PfcFlags.FIRST_FRAG))
    # [MS-RPCE] 2.2.2.1 orphaned: the header alone
    p.write(struct.pack("<BBBB4sHHI", 5, 0, PType.ORPHANED, 3, b"\x10\0\0\0", 16, 0, 2))
    assert not p.readable
    p.write(vectors.SMBCLIENT_SHARE_ENUM)
    (resp,) = read_all(p)
    assert resp[2] == PType.RESPONSE


def test_statistics() -> None:
    p = bound_pipe()
    p.write(vectors.SMBCLIENT_SHARE_ENUM)
    read_all(p)
    s = p.statistics()
    assert s["state"] == "bound"
    assert s["calls"] == 1
    assert s["bytes_in"] == 72 + 92
    assert s["bytes_out"] == 68 + 276
    assert s["pending_output"] == 0
