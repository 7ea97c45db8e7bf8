"""[C706] 12.6 connection-oriented PDUs and [MS-RPCE] 2.2.2 extensions: byte-exact
vectors (a real smbclient/Samba exchange, and PDUs laid out from the spec's fields)."""

from __future__ import annotations

import uuid

import pytest

from smbd.rpc import pdu
from smbd.rpc.pdu import (
    NDR32,
    NDR64,
    ContextElem,
    ContextResult,
    Fault,
    ParseError,
    PfcFlags,
    PType,
    Result,
    ResultReason,
    SyntaxId,
)
from smbd.rpc.srvsvc import SYNTAX as SRVSVC
from tests.smbd.rpc import vectors

BTFN = SyntaxId(uuid.UUID("6cb71c2c-9812-4540-0300-000000000000"), 1)


def test_12_6_3_1_header() -> None:
    h = pdu.parse_header(vectors.SMBCLIENT_BIND)
    assert h == pdu.Header(PType.BIND, 0x03, 72, 0, 1, 0)


def test_12_6_4_3_bind_parses_smbclients_bind() -> None:
    b = pdu.parse_bind(vectors.SMBCLIENT_BIND)
    assert (b.max_xmit_frag, b.max_recv_frag, b.assoc_group_id) == (4280, 4280, 0)
    assert b.contexts == (ContextElem(0, SRVSVC, (NDR32,)),)


def test_12_6_4_3_pack_bind_is_smbclients_bind() -> None:
    assert pdu.pack_bind(1, [ContextElem(0, SRVSVC, (NDR32,))]) == vectors.SMBCLIENT_BIND


def test_12_6_4_4_bind_ack_layout_matches_samba() -> None:
    ack = pdu.pack_bind_ack(
        1,
        max_xmit_frag=4280,
        max_recv_frag=4280,
        assoc_group_id=0xB60D,
        sec_addr="\\pipe\\srvsvc",
        results=[ContextResult(Result.ACCEPTANCE, 0, NDR32)],
    )
    assert ack == vectors.SAMBA_BIND_ACK
    parsed = pdu.parse_bind_ack(ack)
    assert parsed.sec_addr == "\\pipe\\srvsvc"
    assert parsed.results == (ContextResult(0, 0, NDR32),)


def test_12_6_4_4_bind_ack_rejections_and_negotiate_ack() -> None:
    ack = pdu.pack_bind_ack(
        7,
        max_xmit_frag=4280,
        max_recv_frag=4280,
        assoc_group_id=0x1234,
        sec_addr="\\PIPE\\srvsvc",
        results=[
            ContextResult(
                Result.PROVIDER_REJECTION, ResultReason.PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED
            ),
            ContextResult(Result.NEGOTIATE_ACK, 0),
        ],
    )
    assert ack == bytes.fromhex(
        "05000c0310000000"
        "5c00"  # frag_length 92
        "0000"
        "07000000"
        "b810b810"
        "34120000"
        "0d00"
        "5c504950455c73727673766300"  # "\PIPE\srvsvc\0"
        "00"  # pad
        "02000000"  # n_results
        "0200"  # provider_rejection
        "0200"  # proposed_transfer_syntaxes_not_supported
        "0000000000000000000000000000000000000000"
        "0300"  # negotiate_ack ([MS-RPCE] 2.2.2.4)
        "0000"  # no bind-time features supported
        "0000000000000000000000000000000000000000"
    )


def test_12_6_4_5_bind_nak() -> None:
    nak = pdu.pack_bind_nak(3, pdu.RejectReason.PROTOCOL_VERSION_NOT_SUPPORTED)
    assert nak == bytes.fromhex(
        "05000d0310000000"
        "1800"  # frag_length 24
        "0000"
        "03000000"
        "0400"  # provider_reject_reason: protocol_version_not_supported
        "01"  # n_protocols
        "05"  # rpc_vers 5
        "00"  # rpc_vers_minor 0
        "000000"  # pad
    )


def test_12_6_4_1_alter_context_and_12_6_4_2_resp() -> None:
    raw = pdu.pack_bind(4, [ContextElem(1, SRVSVC, (NDR64, NDR32))], ptype=PType.ALTER_CONTEXT)
    b = pdu.parse_bind(raw, PType.ALTER_CONTEXT)
    assert b.contexts[0].transfers == (NDR64, NDR32)
    resp = pdu.pack_bind_ack(
        4,
        max_xmit_frag=4280,
        max_recv_frag=4280,
        assoc_group_id=1,
        sec_addr="",
        results=[ContextResult(0, 0, NDR32)],
        ptype=PType.ALTER_CONTEXT_RESP,
    )
    assert resp[:28] == bytes.fromhex(
        "05000f0310000000"
        "3800"  # 56
        "0000"
        "04000000"
        "b810b810"
        "01000000"
        "0000"  # sec_addr length 0
        "0000"  # pad to 4
    )
    assert pdu.parse_bind_ack(resp, PType.ALTER_CONTEXT_RESP).results[0].transfer == NDR32


def test_12_6_4_9_request_parses_smbclients_request() -> None:
    r = pdu.parse_request(vectors.SMBCLIENT_SHARE_ENUM)
    assert (r.alloc_hint, r.context_id, r.opnum, r.object) == (68, 0, 15, None)
    assert len(r.stub) == 68
    assert pdu.pack_request(2, 0, 15, r.stub) == vectors.SMBCLIENT_SHARE_ENUM


def test_12_6_4_9_request_with_object_uuid() -> None:
    obj = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
    raw = bytearray(pdu.pack_request(5, 0, 1, obj.bytes_le + b"\x01\x02\x03\x04"))
    raw[3] |= PfcFlags.OBJECT_UUID
    r = pdu.parse_request(raw)
    assert r.object == obj
    assert bytes(r.stub) == b"\x01\x02\x03\x04"


def test_12_6_4_10_response_fragments() -> None:
    stub = bytes(range(256)) * 20  # 5120 bytes
    frags = list(pdu.pack_response_fragments(9, 0, stub, 1432))
    # 1432 - 24 = 1408, a multiple of 8: 1408 + 1408 + 1408 + 896
    assert [len(f) for f in frags] == [1432, 1432, 1432, 920]
    flags = [pdu.parse_header(f).flags for f in frags]
    assert flags == [PfcFlags.FIRST_FRAG, 0, 0, PfcFlags.LAST_FRAG]
    parsed = [pdu.parse_response(f) for f in frags]
    assert [p.alloc_hint for p in parsed] == [5120, 3712, 2304, 896]
    assert b"".join(bytes(p.stub) for p in parsed) == stub
    # an empty stub is one fragment
    (only,) = pdu.pack_response_fragments(1, 2, b"", 4280)
    assert only == bytes.fromhex("050002031000000018000000010000000000000002000000")


def test_12_6_4_7_fault() -> None:
    f = pdu.pack_fault(2, Fault.NCA_S_OP_RNG_ERROR, context_id=0, did_not_execute=True)
    assert f == bytes.fromhex(
        "05000323"  # fault, FIRST | LAST | DID_NOT_EXECUTE
        "10000000"
        "2000"  # frag_length 32
        "0000"
        "02000000"
        "00000000"  # alloc_hint
        "0000"  # p_cont_id
        "00"  # cancel_count
        "00"  # reserved
        "0200011c"  # status nca_s_op_rng_error
        "00000000"  # reserved
    )
    assert pdu.parse_fault(f) == Fault.NCA_S_OP_RNG_ERROR


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (vectors.SMBCLIENT_BIND[:15], "shorter than the header"),
        (b"\x04" + vectors.SMBCLIENT_BIND[1:], "RPC version 4.0"),
        (vectors.SMBCLIENT_BIND[:4] + b"\x00" + vectors.SMBCLIENT_BIND[5:], "data representation"),
        (vectors.SMBCLIENT_BIND[:60], "frag_length 72 for a PDU of 60"),
        (vectors.SMBCLIENT_BIND[:10] + b"\x10\x00" + vectors.SMBCLIENT_BIND[12:], "auth_length"),
    ],
)
def test_12_6_3_1_header_errors(raw: bytes, why: str) -> None:
    with pytest.raises(ParseError, match=why) as info:
        pdu.parse_bind(raw)
    assert info.value.fault == Fault.NCA_S_PROTO_ERROR
    assert info.value.disconnect


def test_12_6_4_3_bind_truncated_context() -> None:
    raw = bytearray(vectors.SMBCLIENT_BIND)
    raw[24] = 2  # n_context_elem: two contexts, one present
    with pytest.raises(ParseError, match="beyond the PDU"):
        pdu.parse_bind(bytes(raw))
    raw[24] = 1
    raw[30] = 0  # n_transfer_syn of context 0
    with pytest.raises(ParseError, match="without transfer syntaxes"):
        pdu.parse_bind(bytes(raw))
