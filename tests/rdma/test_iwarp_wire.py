"""Byte-exact vectors for MPA (RFC 5044, RFC 6581), DDP (RFC 5041) and RDMAP (RFC 5040),
and fuzzing of every parser: it parses, or raises IwarpError, nothing else."""

from __future__ import annotations

import contextlib
import struct

import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdma.iwarp import ddp, mpa
from rdma.iwarp.ddp import Opcode
from rdma.iwarp.errors import IwarpError, Layer, LlpCode, MPAError


def crc32c_bitwise(data: bytes) -> int:
    """A reference CRC32C (Castagnoli, reflected poly 0x82F63B78), bit by bit."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_rfc3720_b4_crc32c_vectors() -> None:
    # RFC 3720 B.4: 32 bytes of zeros -> aa 36 91 8a on the wire (LSB first), the iSCSI
    # digest order, which MPA shares (siw: put_unaligned_le32(~crc)).
    assert struct.pack("<I", crc32c_bitwise(bytes(32))) == bytes.fromhex("aa36918a")
    assert struct.pack("<I", crc32c.crc32c(bytes(32))) == bytes.fromhex("aa36918a")
    assert struct.pack("<I", crc32c.crc32c(b"\xff" * 32)) == bytes.fromhex("43aba862")
    assert struct.pack("<I", crc32c.crc32c(bytes(range(32)))) == bytes.fromhex("4e79dd46")


# -- RFC 5044 7.1 / RFC 6581 3.1: request and reply frames ---------------------------------

MPA_REQUEST_REV2_CRC = (
    b"MPA ID Req Frame"  # Key
    + bytes([0x50])  # M=0 C=1 R=0, ENHANCED 0x10 (siw MPA_RR_FLAG_ENHANCED)
    + bytes([0x02])  # Rev 2
    + bytes.fromhex("0004")  # PD_Length 4
    + bytes.fromhex("0010")  # IRD word: A=0 B=0 IRD=16
    + bytes.fromhex("0008")  # ORD word: C=0 D=0 ORD=8
)


def test_rfc5044_7_1_request_frame_rev2_enhanced() -> None:
    frame = mpa.MpaFrame(reply=False, crc=True, ird=16, ord=8)
    assert mpa.encode_frame(frame) == MPA_REQUEST_REV2_CRC
    assert mpa.decode_frame(MPA_REQUEST_REV2_CRC, reply=False) == frame


def test_rfc6581_3_1_peer_to_peer_read_rtr_reply() -> None:
    wire = (
        b"MPA ID Rep Frame"
        + bytes([0x10])  # no CRC, ENHANCED
        + bytes([0x02])
        + bytes.fromhex("0006")  # PD_Length 4 + 2 bytes of ULP private data
        + bytes.fromhex("8004")  # IRD word: A (peer-to-peer) | IRD 4
        + bytes.fromhex("4002")  # ORD word: D (RDMA Read RTR) | ORD 2
        + b"hi"
    )
    frame = mpa.MpaFrame(
        reply=True, ird=4, ord=2, peer_to_peer=True, rtr=mpa.RTR.READ, private_data=b"hi"
    )
    assert mpa.encode_frame(frame) == wire
    assert mpa.decode_frame(wire, reply=True) == frame


def test_rfc5044_7_1_reject_flag_and_rev1() -> None:
    wire = b"MPA ID Rep Frame" + bytes([0x20, 0x01]) + bytes.fromhex("0000")
    frame = mpa.decode_frame(wire, reply=True)
    assert frame.reject and frame.revision == 1 and not frame.enhanced


def test_rfc5044_7_1_bad_key_and_lengths() -> None:
    with pytest.raises(MPAError) as e:
        mpa.decode_frame(MPA_REQUEST_REV2_CRC, reply=True)  # a request where a reply is due
    assert e.value.layer is Layer.LLP and e.value.code == LlpCode.INVALID_REQ_REP
    with pytest.raises(MPAError):
        mpa.frame_length(b"MPA ID Req Frame\x00\x02\x02\x01")  # PD_Length 513 > 512
    with pytest.raises(MPAError):
        mpa.decode_frame(MPA_REQUEST_REV2_CRC[:-1], reply=False)
    enhanced_without_pd = b"MPA ID Req Frame" + bytes([0x10, 0x02, 0, 0])
    with pytest.raises(MPAError):
        mpa.decode_frame(enhanced_without_pd, reply=False)


# -- RFC 5044 4: FPDU framing ----------------------------------------------------------------

SEND_FPDU_HEADER = (
    bytes.fromhex("0017")  # ULPDU_Length 23 = 18-byte untagged header + 5 bytes
    + bytes([0x41])  # DDP: T=0 L=1 DV=1
    + bytes([0x43])  # RDMAP: RV=1 opcode 3 (Send)
    + bytes.fromhex("00000000")  # reserved (Invalidate STag)
    + bytes.fromhex("00000000")  # QN 0
    + bytes.fromhex("00000001")  # MSN 1
    + bytes.fromhex("00000000")  # MO 0
    + b"hello"
    + bytes(3)  # pad: 2 + 23 + 3 = 28, a multiple of 4
)


def test_rfc5044_4_fpdu_send_with_crc() -> None:
    hdr = ddp.untagged_header(Opcode.SEND, True, ddp.QN_SEND, 1, 0)
    bufs = mpa.encode_fpdu(hdr, [b"hello"], crc=True)
    wire = b"".join(bytes(b) for b in bufs)
    crc = struct.pack("<I", crc32c_bitwise(SEND_FPDU_HEADER))
    assert wire == SEND_FPDU_HEADER + crc
    ulpdu, n = mpa.next_fpdu(memoryview(wire), crc=True) or (memoryview(b""), 0)
    assert n == len(wire) == mpa.fpdu_length(23)
    seg = ddp.decode_segment(ulpdu)
    assert (seg.tagged, seg.last, seg.opcode, seg.qn, seg.msn, seg.mo) == (False, True, 3, 0, 1, 0)
    assert bytes(seg.payload) == b"hello"


def test_rfc5044_4_fpdu_without_crc_has_zero_crc_field() -> None:
    hdr = ddp.untagged_header(Opcode.SEND, True, ddp.QN_SEND, 1, 0)
    wire = b"".join(bytes(b) for b in mpa.encode_fpdu(hdr, [b"hello"], crc=False))
    assert wire == SEND_FPDU_HEADER + bytes(4)


def test_rfc5044_4_bad_crc_is_llp_crc_error() -> None:
    hdr = ddp.untagged_header(Opcode.SEND, True, ddp.QN_SEND, 1, 0)
    wire = bytearray(b"".join(bytes(b) for b in mpa.encode_fpdu(hdr, [b"hello"], crc=True)))
    wire[22] ^= 0x01
    with pytest.raises(MPAError) as e:
        mpa.next_fpdu(memoryview(wire), crc=True)
    assert (e.value.layer, e.value.etype, e.value.code) == (Layer.LLP, 0, LlpCode.CRC_ERROR)


def test_rfc5044_4_incomplete_fpdu_needs_more() -> None:
    hdr = ddp.untagged_header(Opcode.SEND, True, ddp.QN_SEND, 1, 0)
    wire = b"".join(bytes(b) for b in mpa.encode_fpdu(hdr, [b"hello"], crc=True))
    for cut in range(len(wire)):
        assert mpa.next_fpdu(memoryview(wire[:cut]), crc=True) is None


# -- RFC 5041 4 / RFC 5040 4: DDP and RDMAP headers ---------------------------------------


def test_rfc5040_4_last_rdma_write_segment() -> None:
    assert ddp.tagged_header(Opcode.RDMA_WRITE, True, 0x00012301, 0x7F0000001000) == (
        bytes([0xC1])  # T=1 L=1 DV=1
        + bytes([0x40])  # RV=1 opcode 0 (RDMA Write)
        + bytes.fromhex("00012301")  # STag
        + bytes.fromhex("00007f0000001000")  # TO
    )


def test_rfc5040_4_4_read_request() -> None:
    hdr = ddp.untagged_header(Opcode.READ_REQUEST, True, ddp.QN_READ_REQUEST, 7, 0)
    assert hdr[:2] == bytes([0x41, 0x41])
    assert hdr[6:10] == bytes.fromhex("00000001")  # QN 1
    req = ddp.ReadRequest(0x0101, 0x2000, 4096, 0x0202, 0x3000)
    assert req.encode() == (
        bytes.fromhex("00000101")  # Data Sink STag
        + bytes.fromhex("0000000000002000")  # Data Sink Tagged Offset
        + bytes.fromhex("00001000")  # RDMA Read Message Size
        + bytes.fromhex("00000202")  # Data Source STag
        + bytes.fromhex("0000000000003000")  # Data Source Tagged Offset
    )
    assert ddp.ReadRequest.decode(req.encode()) == req
    with pytest.raises(IwarpError):
        ddp.ReadRequest.decode(req.encode()[:-1])


def test_rfc5040_4_send_with_invalidate_carries_stag() -> None:
    hdr = ddp.untagged_header(Opcode.SEND_INVALIDATE, True, ddp.QN_SEND, 3, 0, inv_stag=0xABCDEF01)
    assert hdr[:6] == bytes([0x41, 0x44]) + bytes.fromhex("abcdef01")
    seg = ddp.decode_segment(memoryview(hdr))
    assert seg.opcode == Opcode.SEND_INVALIDATE and seg.stag == 0xABCDEF01


def test_rfc5041_bad_versions() -> None:
    bad_ddp = bytearray(ddp.untagged_header(Opcode.SEND, True, 0, 1, 0))
    bad_ddp[0] = 0x42  # DV 2
    with pytest.raises(IwarpError) as e:
        ddp.decode_segment(memoryview(bytes(bad_ddp)))
    assert (e.value.layer, e.value.etype, e.value.code) == (Layer.DDP, 2, 0x06)
    bad_rdmap = bytearray(ddp.tagged_header(Opcode.RDMA_WRITE, True, 1, 0))
    bad_rdmap[1] = 0x80  # RV 2
    with pytest.raises(IwarpError) as e:
        ddp.decode_segment(memoryview(bytes(bad_rdmap)))
    assert (e.value.layer, e.value.etype, e.value.code) == (Layer.RDMAP, 2, 0x05)


def test_rfc5040_4_8_terminate_layout() -> None:
    term = ddp.Terminate(
        layer=Layer.DDP,
        etype=1,
        code=0x00,  # tagged buffer error: invalid STag
        ddp_segment_length=0x0020,
        ddp_header=ddp.tagged_header(Opcode.RDMA_WRITE, True, 0x99, 0x10),
    )
    wire = term.encode()
    assert wire == (
        bytes([0x11])  # Term Layer 1 (DDP) | Term EType 1 (tagged buffer)
        + bytes([0x00])  # Term Error Code: invalid STag
        + bytes([0xC0, 0x00])  # Hdrct M=1 D=1 R=0, reserved
        + bytes.fromhex("0020")  # DDP Segment Length
        + bytes([0xC1, 0x40])
        + bytes.fromhex("00000099")
        + bytes.fromhex("0000000000000010")
    )
    assert ddp.Terminate.decode(wire) == term


# -- fuzzing: parses, or raises the family's error ---------------------------------------------


@given(st.binary(max_size=600), st.booleans())
def test_fuzz_mpa_frames(data: bytes, reply: bool) -> None:
    try:
        n = mpa.frame_length(data)
        if n is not None and n <= len(data):
            mpa.decode_frame(data[:n], reply=reply)
    except IwarpError:
        pass


@given(st.binary(max_size=300), st.booleans())
def test_fuzz_fpdu_and_segments(data: bytes, crc: bool) -> None:
    try:
        got = mpa.next_fpdu(memoryview(data), crc)
        if got is not None:
            seg = ddp.decode_segment(got[0])
            if not seg.tagged and seg.qn == 1:
                ddp.ReadRequest.decode(seg.payload)
            if not seg.tagged and seg.qn == 2:
                ddp.Terminate.decode(seg.payload)
    except IwarpError:
        pass


@given(st.binary(max_size=80))
def test_fuzz_terminate(data: bytes) -> None:
    with contextlib.suppress(IwarpError):
        ddp.Terminate.decode(data)


@given(
    st.sampled_from([Opcode.SEND, Opcode.SEND_INVALIDATE, Opcode.SEND_SE]),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=200),
    st.booleans(),
)
def test_roundtrip_untagged(op: Opcode, msn: int, mo: int, payload: bytes, crc: bool) -> None:
    hdr = ddp.untagged_header(op, True, 0, msn, mo, inv_stag=msn ^ mo)
    wire = b"".join(bytes(b) for b in mpa.encode_fpdu(hdr, [payload] if payload else [], crc))
    got = mpa.next_fpdu(memoryview(wire), crc)
    assert got is not None and got[1] == len(wire) and len(wire) % 4 == 0
    seg = ddp.decode_segment(got[0])
    assert (seg.opcode, seg.msn, seg.mo, seg.stag, bytes(seg.payload)) == (
        op,
        msn,
        mo,
        msn ^ mo,
        payload,
    )
