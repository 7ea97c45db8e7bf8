"""MPA: connection setup frames (RFC 5044 7.1, RFC 6581 enhanced mode) and FPDU framing
(RFC 5044 4) with CRC32C, no markers (as Linux siw).

Wire choices follow siw: the flags byte carries M 0x80, C 0x40, R 0x20 and ENHANCED 0x10
(siw's MPA_RR_FLAG_ENHANCED, set with revision 2 when the first 4 private-data bytes hold the
RFC 6581 IRD/ORD words); the CRC goes on the wire least-significant byte first.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from typing import NamedTuple

import crc32c as _crc32c

from .errors import LlpCode, MPAError

KEY_REQ = b"MPA ID Req Frame"
KEY_REP = b"MPA ID Rep Frame"

FLAG_MARKERS = 0x80
FLAG_CRC = 0x40
FLAG_REJECT = 0x20
FLAG_ENHANCED = 0x10

REVISION_1 = 1
REVISION_2 = 2
MAX_PRIVATE_DATA = 512
MAX_IRD_ORD = 0x3FFF

# RFC 6581 3.1: IRD word bits A (peer-to-peer) and B (zero-length Send RTR);
# ORD word bits C (zero-length RDMA Write RTR) and D (zero-length RDMA Read RTR).
V2_PEER_TO_PEER = 0x8000
V2_SEND_RTR = 0x4000
V2_WRITE_RTR = 0x8000
V2_READ_RTR = 0x4000

FRAME_HEADER = struct.Struct(">16sBBH")  # key, flags, revision, PD_Length: 20 bytes
_V2 = struct.Struct(">HH")
_ULPDU_LEN = struct.Struct(">H")
_CRC = struct.Struct("<I")  # siw: put_unaligned_le32(~crc)
CRC_LEN = 4
_ZEROS = bytes(4)


class RTR(enum.IntFlag):
    """Ready-to-receive message kinds (RFC 6581 3.2)."""

    NONE = 0
    SEND = 1  # zero-length Send
    WRITE = 2  # zero-length RDMA Write
    READ = 4  # zero-length RDMA Read (Request, answered by a zero-length Read Response)


class MpaFrame(NamedTuple):
    """An MPA Request or Reply frame (RFC 5044 7.1; RFC 6581 3.1 when ``enhanced``)."""

    reply: bool
    crc: bool = False
    markers: bool = False
    reject: bool = False
    revision: int = REVISION_2
    enhanced: bool = True  # the RFC 6581 IRD/ORD words lead the private data
    ird: int = 16
    ord: int = 16
    peer_to_peer: bool = False
    rtr: RTR = RTR.NONE
    private_data: bytes = b""  # the ULP's part (after the IRD/ORD words)


def encode_frame(frame: MpaFrame) -> bytes:
    flags = (
        (FLAG_MARKERS if frame.markers else 0)
        | (FLAG_CRC if frame.crc else 0)
        | (FLAG_REJECT if frame.reject else 0)
    )
    pd = frame.private_data
    if frame.enhanced:
        if frame.revision < REVISION_2:
            raise ValueError("enhanced mode needs MPA revision 2")
        if not (0 <= frame.ird <= MAX_IRD_ORD and 0 <= frame.ord <= MAX_IRD_ORD):
            raise ValueError("IRD/ORD out of range")
        flags |= FLAG_ENHANCED
        ird = frame.ird | (V2_PEER_TO_PEER if frame.peer_to_peer else 0)
        ord_ = frame.ord
        ird |= V2_SEND_RTR if frame.rtr & RTR.SEND else 0
        ord_ |= V2_WRITE_RTR if frame.rtr & RTR.WRITE else 0
        ord_ |= V2_READ_RTR if frame.rtr & RTR.READ else 0
        pd = _V2.pack(ird, ord_) + pd
    if len(pd) > MAX_PRIVATE_DATA:
        raise ValueError("MPA private data longer than 512 bytes")
    key = KEY_REP if frame.reply else KEY_REQ
    return FRAME_HEADER.pack(key, flags, frame.revision, len(pd)) + pd


def frame_length(buf: memoryview | bytes) -> int | None:
    """Total length of the request/reply frame at the head of ``buf``, once known."""
    if len(buf) < FRAME_HEADER.size:
        return None
    pd_len: int = _ULPDU_LEN.unpack_from(buf, 18)[0]
    if pd_len > MAX_PRIVATE_DATA:
        raise MPAError(f"MPA private data length {pd_len} exceeds {MAX_PRIVATE_DATA}")
    return FRAME_HEADER.size + pd_len


def decode_frame(buf: memoryview | bytes, *, reply: bool) -> MpaFrame:
    """Parse a whole request (``reply=False``) or reply frame; raise :class:`MPAError`."""
    total = frame_length(buf)
    if total is None or len(buf) != total:
        raise MPAError("truncated MPA request/reply frame")
    key, flags, revision, pd_len = FRAME_HEADER.unpack_from(buf, 0)
    if key != (KEY_REP if reply else KEY_REQ):
        raise MPAError(f"bad MPA key {bytes(key)!r}")
    if revision not in (REVISION_1, REVISION_2):
        raise MPAError(f"unsupported MPA revision {revision}")
    pd = bytes(buf[FRAME_HEADER.size : total])
    enhanced = revision == REVISION_2 and bool(flags & FLAG_ENHANCED)
    ird = ord_ = 0
    p2p = False
    rtr = RTR.NONE
    if enhanced:
        if pd_len < _V2.size:
            raise MPAError("MPA rev 2 enhanced frame without IRD/ORD private data")
        ird_w, ord_w = _V2.unpack_from(pd, 0)
        pd = pd[_V2.size :]
        ird, ord_ = ird_w & MAX_IRD_ORD, ord_w & MAX_IRD_ORD
        p2p = bool(ird_w & V2_PEER_TO_PEER)
        rtr = (
            (RTR.SEND if ird_w & V2_SEND_RTR else RTR.NONE)
            | (RTR.WRITE if ord_w & V2_WRITE_RTR else RTR.NONE)
            | (RTR.READ if ord_w & V2_READ_RTR else RTR.NONE)
        )
    return MpaFrame(
        reply=reply,
        crc=bool(flags & FLAG_CRC),
        markers=bool(flags & FLAG_MARKERS),
        reject=bool(flags & FLAG_REJECT),
        revision=revision,
        enhanced=enhanced,
        ird=ird,
        ord=ord_,
        peer_to_peer=p2p,
        rtr=rtr,
        private_data=pd,
    )


def pad_length(ulpdu_length: int) -> int:
    """Pad bytes after the ULPDU so that ULPDU_Length + ULPDU + pad is a multiple of 4."""
    return -(2 + ulpdu_length) % 4


def fpdu_length(ulpdu_length: int) -> int:
    return 2 + ulpdu_length + pad_length(ulpdu_length) + CRC_LEN


def encode_fpdu(
    header: bytes, payload: Sequence[memoryview | bytes], crc: bool
) -> list[bytes | memoryview]:
    """One FPDU as iovecs: [ULPDU_Length + DDP/RDMAP header, *payload, pad + CRC]."""
    ulen = len(header) + sum(len(p) for p in payload)
    if ulen > 0xFFFF:
        raise ValueError("ULPDU longer than 65535 bytes")
    head = _ULPDU_LEN.pack(ulen) + header
    pad = _ZEROS[: pad_length(ulen)]
    if crc:
        value = _crc32c.crc32c(head)
        for p in payload:
            value = _crc32c.crc32c(p, value)
        if pad:
            value = _crc32c.crc32c(pad, value)
        trailer = pad + _CRC.pack(value)
    else:
        trailer = pad + _ZEROS
    return [head, *payload, trailer]


def next_fpdu(buf: memoryview, crc: bool) -> tuple[memoryview, int] | None:
    """The ULPDU of the complete FPDU at the head of ``buf`` and the FPDU's length, or None
    if more bytes are needed.  A bad CRC raises :class:`MPAError` (LLP, MPA CRC error)."""
    if len(buf) < 2:
        return None
    (ulen,) = _ULPDU_LEN.unpack_from(buf, 0)
    total = fpdu_length(ulen)
    if len(buf) < total:
        return None
    if crc:
        (got,) = _CRC.unpack_from(buf, total - CRC_LEN)
        want = _crc32c.crc32c(buf[: total - CRC_LEN])
        if got != want:
            raise MPAError(
                f"MPA CRC error: got {got:#010x}, computed {want:#010x}", code=LlpCode.CRC_ERROR
            )
    return buf[2 : 2 + ulen], total
