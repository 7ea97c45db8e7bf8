"""DDP segments (RFC 5041 4) with their RDMAP control byte (RFC 5040 4), the RDMA Read
Request payload (RFC 5040 4.4) and the Terminate message (RFC 5040 4.8 / 7.1).

Tagged header, 14 bytes:   DDP ctrl | RDMAP ctrl | STag(4) | TO(8)
Untagged header, 18 bytes: DDP ctrl | RDMAP ctrl | Inval STag / reserved(4) | QN(4) | MSN(4) | MO(4)
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from .errors import (
    DDPError,
    DdpEType,
    DdpTaggedCode,
    DdpUntaggedCode,
    IwarpError,
    Layer,
    RdmapCode,
    RDMAPError,
    RdmapEType,
)

DDP_TAGGED = 0x80
DDP_LAST = 0x40
DDP_VERSION = 1
RDMAP_VERSION = 1

TAGGED = struct.Struct(">BBIQ")
UNTAGGED = struct.Struct(">BBIIII")
READ_REQUEST = struct.Struct(">IQIIQ")
TERM_CTRL = struct.Struct(">I")

QN_SEND = 0
QN_READ_REQUEST = 1
QN_TERMINATE = 2


class Opcode(enum.IntEnum):
    """RDMAP opcodes (RFC 5040 4.3)."""

    RDMA_WRITE = 0x0
    READ_REQUEST = 0x1
    READ_RESPONSE = 0x2
    SEND = 0x3
    SEND_INVALIDATE = 0x4
    SEND_SE = 0x5
    SEND_SE_INVALIDATE = 0x6
    TERMINATE = 0x7


TAGGED_OPCODES = frozenset({Opcode.RDMA_WRITE, Opcode.READ_RESPONSE})
SEND_OPCODES = frozenset(
    {Opcode.SEND, Opcode.SEND_INVALIDATE, Opcode.SEND_SE, Opcode.SEND_SE_INVALIDATE}
)
INVALIDATE_OPCODES = frozenset({Opcode.SEND_INVALIDATE, Opcode.SEND_SE_INVALIDATE})


class Segment(NamedTuple):
    """A decoded DDP segment; ``stag`` is the tagged STag or the untagged Invalidate STag."""

    tagged: bool
    last: bool
    opcode: int
    stag: int
    to: int  # tagged offset (tagged only)
    qn: int  # untagged only
    msn: int
    mo: int
    header_len: int
    payload: memoryview


class ReadRequest(NamedTuple):
    """RDMA Read Request payload, 28 bytes (RFC 5040 4.4)."""

    sink_stag: int
    sink_to: int
    size: int
    src_stag: int
    src_to: int

    def encode(self) -> bytes:
        return READ_REQUEST.pack(*self)

    @classmethod
    def decode(cls, buf: memoryview | bytes) -> ReadRequest:
        if len(buf) != READ_REQUEST.size:
            raise RDMAPError(
                f"RDMA Read Request payload of {len(buf)} bytes (want 28)",
                RdmapEType.REMOTE_OPERATION,
                RdmapCode.UNSPECIFIED,
            )
        return cls(*READ_REQUEST.unpack(buf))


def _ctrl(tagged: bool, last: bool, opcode: int) -> tuple[int, int]:
    ddp = (DDP_TAGGED if tagged else 0) | (DDP_LAST if last else 0) | DDP_VERSION
    return ddp, (RDMAP_VERSION << 6) | opcode


def tagged_header(opcode: int, last: bool, stag: int, to: int) -> bytes:
    d, r = _ctrl(True, last, opcode)
    return TAGGED.pack(d, r, stag, to)


def untagged_header(
    opcode: int, last: bool, qn: int, msn: int, mo: int, inv_stag: int = 0
) -> bytes:
    d, r = _ctrl(False, last, opcode)
    return UNTAGGED.pack(d, r, inv_stag, qn, msn, mo)


def decode_segment(ulpdu: memoryview) -> Segment:
    """Parse a DDP segment; reserved bits are ignored on receive (RFC 5041 5.1)."""
    if len(ulpdu) < 2:
        raise DDPError(
            "DDP segment shorter than its control fields", DdpEType.LOCAL_CATASTROPHIC, 0
        )
    ddp, rdmap = ulpdu[0], ulpdu[1]
    tagged = bool(ddp & DDP_TAGGED)
    if ddp & 0x03 != DDP_VERSION:
        if tagged:
            raise DDPError(
                "invalid DDP version", DdpEType.TAGGED_BUFFER, DdpTaggedCode.INVALID_VERSION
            )
        raise DDPError(
            "invalid DDP version", DdpEType.UNTAGGED_BUFFER, DdpUntaggedCode.INVALID_VERSION
        )
    if rdmap >> 6 != RDMAP_VERSION:
        raise RDMAPError(
            "invalid RDMAP version", RdmapEType.REMOTE_OPERATION, RdmapCode.INVALID_VERSION
        )
    opcode = rdmap & 0x0F
    last = bool(ddp & DDP_LAST)
    if tagged:
        if len(ulpdu) < TAGGED.size:
            raise DDPError(
                "truncated tagged DDP header", DdpEType.TAGGED_BUFFER, DdpTaggedCode.INVALID_STAG
            )
        _, _, stag, to = TAGGED.unpack_from(ulpdu, 0)
        return Segment(True, last, opcode, stag, to, 0, 0, 0, TAGGED.size, ulpdu[TAGGED.size :])
    if len(ulpdu) < UNTAGGED.size:
        raise DDPError(
            "truncated untagged DDP header", DdpEType.UNTAGGED_BUFFER, DdpUntaggedCode.INVALID_QN
        )
    _, _, inv, qn, msn, mo = UNTAGGED.unpack_from(ulpdu, 0)
    return Segment(False, last, opcode, inv, 0, qn, msn, mo, UNTAGGED.size, ulpdu[UNTAGGED.size :])


# Terminate (RFC 5040 4.8): Layer(4) EType(4) | Error Code(8) | Hdrct M D R (3) | reserved(13)
TERM_M = 0x80
TERM_D = 0x40
TERM_R = 0x20


class Terminate(NamedTuple):
    layer: int
    etype: int
    code: int
    ddp_segment_length: int | None = None  # present when the M flag is set
    ddp_header: bytes = b""  # the terminated DDP header (D)
    rdmap_header: bytes = b""  # the terminated RDMA Read Request header (R)

    @classmethod
    def from_error(
        cls, err: IwarpError, segment: Segment | None = None, ulpdu_len: int | None = None
    ) -> Terminate:
        if segment is not None and ulpdu_len is not None:
            hdr = header_bytes(segment)
            rd = b""
            if (
                err.layer == Layer.RDMAP
                and not segment.tagged
                and segment.qn == QN_READ_REQUEST
                and len(segment.payload) >= READ_REQUEST.size
            ):
                rd = bytes(segment.payload[: READ_REQUEST.size])
            return cls(err.layer, err.etype, err.code, ulpdu_len, hdr, rd)
        return cls(err.layer, err.etype, err.code)

    def encode(self) -> bytes:
        flags = (
            (TERM_M if self.ddp_segment_length is not None else 0)
            | (TERM_D if self.ddp_header else 0)
            | (TERM_R if self.rdmap_header else 0)
        )
        ctrl = ((self.layer & 0xF) << 28) | ((self.etype & 0xF) << 24) | ((self.code & 0xFF) << 16)
        ctrl |= flags << 8
        out = TERM_CTRL.pack(ctrl)
        if self.ddp_segment_length is not None:
            out += struct.pack(">H", self.ddp_segment_length)
        return out + self.ddp_header + self.rdmap_header

    @classmethod
    def decode(cls, buf: memoryview | bytes) -> Terminate:
        if len(buf) < TERM_CTRL.size:
            raise RDMAPError(
                "truncated Terminate", RdmapEType.REMOTE_OPERATION, RdmapCode.UNSPECIFIED
            )
        (ctrl,) = TERM_CTRL.unpack_from(buf, 0)
        flags = (ctrl >> 8) & 0xE0
        rest = bytes(buf[TERM_CTRL.size :])
        seg_len = None
        if flags & TERM_M:
            if len(rest) < 2:
                raise RDMAPError(
                    "Terminate M flag without segment length",
                    RdmapEType.REMOTE_OPERATION,
                    RdmapCode.UNSPECIFIED,
                )
            (seg_len,) = struct.unpack_from(">H", rest, 0)
            rest = rest[2:]
        ddp_hdr = b""
        if flags & TERM_D and rest:
            n = TAGGED.size if rest[0] & DDP_TAGGED else UNTAGGED.size
            ddp_hdr, rest = rest[:n], rest[n:]
        rd = rest[: READ_REQUEST.size] if flags & TERM_R else b""
        return cls(ctrl >> 28, (ctrl >> 24) & 0xF, (ctrl >> 16) & 0xFF, seg_len, ddp_hdr, rd)


def header_bytes(segment: Segment) -> bytes:
    """Rebuild the segment's DDP/RDMAP header (it is not kept beside the payload view)."""
    if segment.tagged:
        return tagged_header(segment.opcode, segment.last, segment.stag, segment.to)
    return untagged_header(
        segment.opcode, segment.last, segment.qn, segment.msn, segment.mo, segment.stag
    )
